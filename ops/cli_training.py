"""The `tandem train`, `tandem index` and `tandem eval` commands: training runs and evaluations from the shell."""

from __future__ import annotations

import argparse
import json
import types
import typing
from pathlib import Path

from pydantic import BaseModel

from tandem.settings import Settings


def add_options(parser: argparse.ArgumentParser, options: type[BaseModel], defaults: dict[str, str] | None = None,
                ) -> None:
    """A flag per scalar field of `options` (`max_epochs` → `--max-epochs`), with its description and default
    (`defaults` names those the deployment sets). A flag not given is left out, so the field keeps its default and
    stays unset (a learning rate not given is the deployment's)."""
    for name, field in options.model_fields.items():
        kinds = [k for k in typing.get_args(field.annotation) if k is not type(None)] \
            if isinstance(field.annotation, types.UnionType) else [field.annotation]
        choices = typing.get_args(kinds[0]) if typing.get_origin(kinds[0]) is typing.Literal else None
        if len(kinds) != 1 or (kinds[0] not in (bool, int, float, str) and choices is None):
            continue
        default = (defaults or {}).get(name, field.default)
        help_text = (field.description or "") + ("" if default is None else f" (default: {default})")
        flag = "--" + name.replace("_", "-")
        if choices is not None:
            parser.add_argument(flag, choices=choices, default=argparse.SUPPRESS, help=help_text)
        elif kinds[0] is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
        else:
            parser.add_argument(flag, type=kinds[0], default=argparse.SUPPRESS, help=help_text)


def options_from(args: argparse.Namespace, options: type[BaseModel]):
    return options.model_validate({name: getattr(args, name) for name in options.model_fields if hasattr(args, name)})


def cmd_train_lrurec(settings: Settings, args: argparse.Namespace) -> None:
    from contextlib import nullcontext

    from db.server import database_url
    from training.lrurec import TrainRequest, run_training
    from training.options import LRURecOptions

    request = TrainRequest(options_from(args, LRURecOptions), ratings=args.ratings, output=args.output,
                           activate=not args.no_activate)
    db = nullcontext(None) if args.ratings else database_url(settings.database_url, settings.pgdata_dir)
    with db as url:
        metrics = run_training(settings, request, url)
    # The last line is the metrics JSON, for scripts.
    print(json.dumps(metrics))


def cmd_train_ranker(settings: Settings, args: argparse.Namespace) -> None:
    from contextlib import nullcontext

    from db.server import database_url
    from training.options import RankerOptions
    from training.ranker import RankerRequest, run_ranker_training

    request = RankerRequest(options_from(args, RankerOptions), ratings=args.ratings, items=args.items,
                            lrurec=args.lrurec, output=args.output, activate=not args.no_activate)
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
    from training.keywords import KeywordRequest, run_keyword_training
    from training.options import KeywordOptions

    request = KeywordRequest(options_from(args, KeywordOptions), activate=not args.no_activate)
    with database_url(settings.database_url, settings.pgdata_dir) as url:
        metrics = run_keyword_training(settings, request, url)
    print(json.dumps({k: v for k, v in metrics.items() if k != "epochs"}, ensure_ascii=False))


def cmd_train_dpr(settings: Settings, args: argparse.Namespace) -> None:
    from db.server import database_url
    from training.options import DPROptions
    from training.retrieval import DPRRequest, run_dpr_training

    request = DPRRequest(options_from(args, DPROptions), output=args.output, build_index=not args.no_index,
                         activate=not args.no_activate)
    with database_url(settings.database_url, settings.pgdata_dir) as url:
        metrics = run_dpr_training(settings, request, url)
    print(json.dumps({k: v for k, v in metrics.items() if k != "epochs"}))


def cmd_train_qa(settings: Settings, args: argparse.Namespace) -> None:
    from db.server import database_url
    from training.options import QAOptions
    from training.qa import QAAdapterRequest, run_qa_training

    request = QAAdapterRequest(options_from(args, QAOptions), activate=not args.no_activate)
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
    from training.options import DPROptions, KeywordOptions, LRURecOptions, QAOptions, RankerOptions

    no_activate = {"action": "store_true", "help": "register the version without serving it"}
    train = sub.add_parser("train", help="train a model").add_subparsers(dest="model", required=True)
    lru = train.add_parser("lrurec", help="LRURec candidate generator; from the database unless --ratings")
    lru.add_argument("--ratings", type=Path, help="ratings CSV instead of the database (user_id|userId, "
                     "item_id|movieId|itemId, timestamp[, rating]), or MovieLens ratings.dat / u.data")
    lru.add_argument("--output", type=Path, help="artifact folder (default var/artifacts/lrurec/<version>)")
    lru.add_argument("--no-activate", **no_activate)
    add_options(lru, LRURecOptions)
    lru.set_defaults(func=cmd_train_lrurec)

    rk = train.add_parser("ranker", help="LoRA adapter of the LLM verbalizer, on top of a trained LRURec; "
                          "from the database unless --ratings")
    rk.add_argument("--ratings", type=Path, help="ratings CSV instead of the database")
    rk.add_argument("--items", type=Path, help="items CSV with titles (item_id|movieId,title), with --ratings")
    rk.add_argument("--lrurec", type=Path, help="LRURec artifact folder (default: the active version)")
    rk.add_argument("--output", type=Path, help="adapter folder (default var/artifacts/ranker/<version>)")
    rk.add_argument("--no-activate", **no_activate)
    add_options(rk, RankerOptions)
    rk.set_defaults(func=cmd_train_ranker)

    dpr = train.add_parser("dpr", help="DPR dual encoder on the database's qa pairs, then its FAISS index")
    dpr.add_argument("--output", type=Path, help="encoder folder (default var/artifacts/dpr/<version>)")
    dpr.add_argument("--no-index", action="store_true", help="do not build the index afterwards")
    dpr.add_argument("--no-activate", **no_activate)
    add_options(dpr, DPROptions, {"lr": "TANDEM_DPR_LR"})
    dpr.set_defaults(func=cmd_train_dpr)

    qa = train.add_parser("qa-adapter", help="LoRA adapter of the LLM for answering from retrieved passages")
    qa.add_argument("--no-activate", **no_activate)
    add_options(qa, QAOptions)
    qa.set_defaults(func=cmd_train_qa)

    kb = train.add_parser("kobart", help="the keyword model (BART seq2seq) on the database's keyword pairs")
    kb.add_argument("--no-activate", **no_activate)
    add_options(kb, KeywordOptions, {"lr": "TANDEM_KEYWORDS_LR"})
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
