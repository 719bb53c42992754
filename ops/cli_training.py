"""The `tandem train`, `tandem index` and `tandem eval` commands: training runs and evaluations from the shell."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tandem.settings import Settings


def cmd_train_lrurec(settings: Settings, args: argparse.Namespace) -> None:
    from contextlib import nullcontext

    from db.server import database_url
    from models.lrurec.train import TrainConfig
    from training.lrurec import TrainRequest, run_training

    model_options = {k: getattr(args, k) for k in ("hidden", "blocks", "dropout", "max_len") if getattr(args, k)}
    if args.dropout is not None:
        model_options["attn_dropout"] = args.dropout
    train_cfg = TrainConfig(max_epochs=args.max_epochs, batch_size=args.batch_size, lr=args.lr,
                            weight_decay=args.weight_decay, patience=args.patience, seed=args.seed,
                            exclude_seen=args.exclude_seen, shuffle_ties=args.shuffle_ties)
    request = TrainRequest(ratings=args.ratings, output=args.output, model_options=model_options, train=train_cfg,
                           activate=not args.no_activate)
    db = nullcontext(None) if args.ratings else database_url(settings.database_url, settings.pgdata_dir)
    with db as url:
        metrics = run_training(settings, request, url)
    # The last line is the metrics JSON, for scripts.
    print(json.dumps(metrics))


def cmd_train_ranker(settings: Settings, args: argparse.Namespace) -> None:
    from contextlib import nullcontext

    from db.server import database_url
    from models.verbalizer.train import RankerTrainConfig
    from training.ranker import RankerRequest, run_ranker_training

    request = RankerRequest(
        ratings=args.ratings, items=args.items, lrurec=args.lrurec, output=args.output, examples=args.examples,
        eval_users=args.eval_users, activate=not args.no_activate,
        train=RankerTrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed),
    )
    db = nullcontext(None) if args.ratings else database_url(settings.database_url, settings.pgdata_dir)
    with db as url:
        metrics = run_ranker_training(settings, request, url)
    print(json.dumps(metrics))


def cmd_eval_lrurec(settings: Settings, args: argparse.Namespace) -> None:
    from contextlib import nullcontext

    from db.server import database_url
    from training.lrurec import run_evaluation

    db = nullcontext(None) if args.ratings else database_url(settings.database_url, settings.pgdata_dir)
    with db as url:
        print(json.dumps(run_evaluation(args.model, args.ratings, url)))


def cmd_train_kobart(settings: Settings, args: argparse.Namespace) -> None:
    from db.server import database_url
    from models.kobart.train import KeywordTrainConfig
    from training.keywords import KeywordRequest, run_keyword_training

    request = KeywordRequest(
        holdout=args.holdout, max_pairs=args.max_pairs, activate=not args.no_activate,
        train=KeywordTrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr or settings.keywords_lr,
                                 seed=args.seed),
    )
    with database_url(settings.database_url, settings.pgdata_dir) as url:
        metrics = run_keyword_training(settings, request, url)
    print(json.dumps({k: v for k, v in metrics.items() if k != "epochs"}, ensure_ascii=False))


def cmd_train_dpr(settings: Settings, args: argparse.Namespace) -> None:
    from db.server import database_url
    from models.dpr.train import DPRTrainConfig
    from training.retrieval import DPRRequest, run_dpr_training

    request = DPRRequest(
        holdout=args.holdout, split_seed=args.split_seed, hard_negatives=not args.no_hard_negatives,
        inverse_cloze=not args.no_inverse_cloze,
        max_questions=args.max_questions, output=args.output, build_index=not args.no_index,
        activate=not args.no_activate,
        train=DPRTrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr or settings.dpr_lr,
                             patience=args.patience, seed=args.seed),
    )
    with database_url(settings.database_url, settings.pgdata_dir) as url:
        metrics = run_dpr_training(settings, request, url)
    print(json.dumps({k: v for k, v in metrics.items() if k != "epochs"}))


def cmd_train_qa(settings: Settings, args: argparse.Namespace) -> None:
    from db.server import database_url
    from models.lora import LoRATrainConfig
    from training.qa import QAAdapterRequest, run_qa_training

    request = QAAdapterRequest(
        examples=args.examples, holdout=args.holdout, activate=not args.no_activate,
        train=LoRATrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed),
    )
    with database_url(settings.database_url, settings.pgdata_dir) as url:
        print(json.dumps(run_qa_training(settings, request, url)))


def cmd_index_build(settings: Settings, args: argparse.Namespace) -> None:
    from db.server import database_url
    from training.retrieval import run_index_build

    with database_url(settings.database_url, settings.pgdata_dir) as url:
        print(json.dumps(run_index_build(settings, url, args.dpr)))


def cmd_eval_retrieval(settings: Settings, args: argparse.Namespace) -> None:
    from db.server import database_url
    from training.retrieval import run_retrieval_eval

    modes = ["dense", "sparse", "hybrid"] if args.mode == "all" else [args.mode]
    with database_url(settings.database_url, settings.pgdata_dir) as url:
        print(json.dumps(run_retrieval_eval(settings, url, modes, args.dpr, args.holdout, args.split_seed,
                                            args.max_questions, args.exclude_holdout, args.dense_weights,
                                            args.expand_keywords)))


def add_training_commands(sub) -> None:
    """`train`, `index` and `eval` under the `tandem` command's subparsers `sub`."""
    from models.dpr.train import DPRTrainConfig
    from models.kobart.train import KeywordTrainConfig
    from models.lrurec.train import TrainConfig
    from models.verbalizer.data import DEFAULT_EXAMPLES
    from models.verbalizer.train import RankerTrainConfig

    TRAIN_DEFAULTS, RANKER_DEFAULTS, DPR_DEFAULTS = TrainConfig(), RankerTrainConfig(), DPRTrainConfig()
    KEYWORD_DEFAULTS = KeywordTrainConfig()
    train = sub.add_parser("train", help="train a model").add_subparsers(dest="model", required=True)
    lru = train.add_parser("lrurec", help="LRURec candidate generator; from the database unless --ratings")
    lru.add_argument("--ratings", type=Path, help="ratings CSV instead of the database (user_id|userId, "
                     "item_id|movieId|itemId, timestamp[, rating]), or MovieLens ratings.dat / u.data")
    lru.add_argument("--items", type=Path, help="items CSV (item_id,title); titles are not needed for training")
    lru.add_argument("--output", type=Path, help="artifact folder (default var/artifacts/lrurec/<version>)")
    lru.add_argument("--max-epochs", type=int, default=TRAIN_DEFAULTS.max_epochs)
    lru.add_argument("--patience", type=int, default=TRAIN_DEFAULTS.patience)
    lru.add_argument("--batch-size", type=int, default=TRAIN_DEFAULTS.batch_size)
    lru.add_argument("--lr", type=float, default=TRAIN_DEFAULTS.lr)
    lru.add_argument("--weight-decay", type=float, default=TRAIN_DEFAULTS.weight_decay)
    lru.add_argument("--seed", type=int, default=TRAIN_DEFAULTS.seed)
    lru.add_argument("--exclude-seen", action=argparse.BooleanOptionalAction, default=TRAIN_DEFAULTS.exclude_seen,
                     help="leave the items already in the sequence out of each position's softmax")
    lru.add_argument("--shuffle-ties", action=argparse.BooleanOptionalAction, default=TRAIN_DEFAULTS.shuffle_ties,
                     help="a new order, each epoch, for the items a user rated in the same second")
    lru.add_argument("--hidden", type=int)
    lru.add_argument("--blocks", type=int)
    lru.add_argument("--dropout", type=float, help="dropout everywhere in the model")
    lru.add_argument("--max-len", type=int, dest="max_len")
    lru.add_argument("--no-activate", action="store_true", help="register the version without serving it")
    lru.set_defaults(func=cmd_train_lrurec)

    rk = train.add_parser("ranker", help="LoRA adapter of the LLM verbalizer, on top of a trained LRURec; "
                          "from the database unless --ratings")
    rk.add_argument("--ratings", type=Path, help="ratings CSV instead of the database")
    rk.add_argument("--items", type=Path, help="items CSV with titles (item_id|movieId,title), with --ratings")
    rk.add_argument("--lrurec", type=Path, help="LRURec artifact folder (default: the active version)")
    rk.add_argument("--output", type=Path, help="adapter folder (default var/artifacts/ranker/<version>)")
    rk.add_argument("--examples", type=int, default=DEFAULT_EXAMPLES, help="LlamaRec-style training prompts")
    rk.add_argument("--epochs", type=int, default=RANKER_DEFAULTS.epochs)
    rk.add_argument("--batch-size", type=int, default=RANKER_DEFAULTS.batch_size)
    rk.add_argument("--lr", type=float, default=RANKER_DEFAULTS.lr)
    rk.add_argument("--seed", type=int, default=RANKER_DEFAULTS.seed)
    rk.add_argument("--eval-users", type=int, help="evaluate on the first N test users (default: all)")
    rk.add_argument("--no-activate", action="store_true", help="register the adapter without serving it")
    rk.set_defaults(func=cmd_train_ranker)

    dpr = train.add_parser("dpr", help="DPR dual encoder on the database's qa pairs, then its FAISS index")
    dpr.add_argument("--holdout", type=float, default=0.2, help="share of documents held out for evaluation")
    dpr.add_argument("--split-seed", type=int, default=0)
    dpr.add_argument("--max-questions", type=int, help="train on the first N training questions")
    dpr.add_argument("--no-hard-negatives", action="store_true", help="in-batch negatives only (no BM25 ones)")
    dpr.add_argument("--no-inverse-cloze", action="store_true",
                     help="questions only (no sentence-to-passage examples from the collection)")
    dpr.add_argument("--epochs", type=int, default=DPR_DEFAULTS.epochs)
    dpr.add_argument("--batch-size", type=int, default=DPR_DEFAULTS.batch_size)
    dpr.add_argument("--patience", type=int, default=DPR_DEFAULTS.patience,
                     help="epochs without a better validation loss before stopping")
    dpr.add_argument("--lr", type=float, help="default: TANDEM_DPR_LR")
    dpr.add_argument("--seed", type=int, default=DPR_DEFAULTS.seed)
    dpr.add_argument("--output", type=Path, help="encoder folder (default var/artifacts/dpr/<version>)")
    dpr.add_argument("--no-index", action="store_true", help="do not build the index afterwards")
    dpr.add_argument("--no-activate", action="store_true")
    dpr.set_defaults(func=cmd_train_dpr)

    qa = train.add_parser("qa-adapter", help="LoRA adapter of the LLM for answering from retrieved passages")
    qa.add_argument("--examples", type=int, default=64, help="question-answer pairs to train on")
    qa.add_argument("--holdout", type=float, default=0.2, help="share of documents kept out of training")
    qa.add_argument("--epochs", type=int, default=RANKER_DEFAULTS.epochs)
    qa.add_argument("--batch-size", type=int, default=RANKER_DEFAULTS.batch_size)
    qa.add_argument("--lr", type=float, default=RANKER_DEFAULTS.lr)
    qa.add_argument("--seed", type=int, default=RANKER_DEFAULTS.seed)
    qa.add_argument("--no-activate", action="store_true")
    qa.set_defaults(func=cmd_train_qa)

    kb = train.add_parser("kobart", help="the keyword model (BART seq2seq) on the database's keyword pairs")
    kb.add_argument("--holdout", type=float, default=0.1, help="share of pairs held out for the report")
    kb.add_argument("--max-pairs", type=int, help="train on the first N training pairs")
    kb.add_argument("--epochs", type=int, default=KEYWORD_DEFAULTS.epochs)
    kb.add_argument("--batch-size", type=int, default=KEYWORD_DEFAULTS.batch_size)
    kb.add_argument("--lr", type=float, help="default: TANDEM_KEYWORDS_LR")
    kb.add_argument("--seed", type=int, default=KEYWORD_DEFAULTS.seed)
    kb.add_argument("--no-activate", action="store_true")
    kb.set_defaults(func=cmd_train_kobart)

    index = sub.add_parser("index", help="the retrieval index").add_subparsers(dest="action", required=True)
    ib = index.add_parser("build", help="chunk, encode and index every passage (FAISS kind from TANDEM_INDEX_KIND)")
    ib.add_argument("--dpr", type=Path, help="DPR encoder folder (default: the active version)")
    ib.set_defaults(func=cmd_index_build)

    evaluate = sub.add_parser("eval", help="evaluate a saved model").add_subparsers(dest="model", required=True)
    ev = evaluate.add_parser("lrurec", help="test metrics of a saved LRURec (full ranking, history excluded)")
    ev.add_argument("--model", type=Path, required=True, help="artifact folder")
    ev.add_argument("--ratings", type=Path, help="ratings CSV instead of the database")
    ev.set_defaults(func=cmd_eval_lrurec)

    er = evaluate.add_parser("retrieval", help="top-1/5/10/20 accuracy and MRR@10 on held-out questions")
    er.add_argument("--mode", choices=["dense", "sparse", "hybrid", "all"], default="all")
    er.add_argument("--dpr", type=Path, help="DPR encoder folder to index with (default: the active index)")
    er.add_argument("--holdout", type=float, default=0.2)
    er.add_argument("--split-seed", type=int, default=0)
    er.add_argument("--max-questions", type=int, help="evaluate the first N held-out questions")
    er.add_argument("--exclude-holdout", type=float, default=0.0,
                    help="leave out the documents this smaller holdout holds out (a dev slice for tuning)")
    er.add_argument("--dense-weights", type=float, nargs="*", help="also report hybrid at these dense weights")
    er.add_argument("--expand-keywords", action="store_true",
                    help="also report sparse with the analyser's keywords added to the query")
    er.set_defaults(func=cmd_eval_retrieval)
