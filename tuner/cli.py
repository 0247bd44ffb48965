"""The ``privtune`` command line: one small class per command.

Exit codes (one place): 0 success, 2 bad config or data, 3 no adequate
defense found, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM, as
systemd, Kubernetes and Slurm stop a job; handled like Ctrl-C).
"""

from __future__ import annotations

import argparse
import gc
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Mapping, Sequence

import optuna
import yaml

from defenses import InvalidDefenseError, load_recommendation
from tuner.config import RunConfig, config_to_dict, load_config
from tuner.errors import ConfigError, NoAdequateDefenseError, PrivtuneError
from tuner.figures import figure_data, render_all
from tuner.export import FORMATS, recommendation_document, render, write_recommendation
from tuner.progress import ProgressPrinter
from tuner.report import frontier_rows, render_table, summary_lines, write_reports
from tuner.run_folder import RunFolder, write_atomic
from tuner.tensorboard import TensorBoardLogger
from tuner.storage import check_storage_url, driver_url, shown_url
from tuner.tune import Prepared, Recommendation, open_run_study, prepare, recommend, run_study

RUN_CONFIG = "config.yaml"


class Command:
    """One sub-command: its arguments and its action, which returns the exit code."""

    name: str
    help: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        raise NotImplementedError

    def take_action(self, args: argparse.Namespace) -> int:
        raise NotImplementedError


class Tune(Command):
    name = "tune"
    help = "search the defense space and recommend the weakest adequate defense"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("config", nargs="?", help="YAML config (default: the built-in digits config)")
        parser.add_argument(
            "--trials",
            type=int,
            help="trials the study should hold in all (default: study.trials); a rerun or another "
            "worker continues toward it, a larger number extends a finished study",
        )
        parser.add_argument("--out", type=Path, help="run folder (default: runs/<study.name>)")
        parser.add_argument(
            "--storage",
            help="Optuna RDB URL, e.g. postgresql://user:password@host/db, shared by every worker "
            "(default: a SQLite file in the run folder)",
        )
        parser.add_argument("--dry-run", action="store_true", help="print the resolved config and role sizes")
        parser.add_argument("--quiet", action="store_true", help="no per-trial progress lines")

    def take_action(self, args: argparse.Namespace) -> int:
        config = load_config(args.config)
        requested = config.study.trials if args.trials is None else args.trials
        if requested < 0:
            raise ConfigError(f"--trials: must be an integer >= 0, but got {requested}")
        # --trials is the study's size: the dry run and RUN/config.yaml show it as study.trials.
        config = replace(config, study=replace(config.study, trials=requested))
        prepared = prepare(config)
        folder = RunFolder(args.out or Path("runs") / config.study.name)
        if args.dry_run:
            _print_warnings(prepared)
            print(dry_run_text(prepared, folder, n_trials=requested, storage=args.storage), end="")
            return 0
        check_storage_url(args.storage or config.study.storage)
        _check_writable_folder(folder.root)
        if requested == 0 and not (args.storage or config.study.storage) and not folder.study_db.exists():
            raise ConfigError(
                f"--trials: 0 trials asked for, but {folder.root} holds no study yet to report on; "
                "run `privtune tune` with --trials 1 or more (nothing was written)"
            )
        shared = open_run_study(prepared, folder, storage=args.storage)
        _print_warnings(prepared)  # after the checks that refuse a run, whose message comes alone
        write_atomic(folder.root / RUN_CONFIG, yaml.safe_dump(_portable_config(config), sort_keys=False))
        target, done = shared.target(requested), shared.finished()
        if 0 < target <= done and not args.quiet:
            held = f"{done} of {target} trials" if done == target else f"{done} trials, more than the {target} asked for"
            print(f"privtune: the study already holds {held}: no trial to run (pass --trials N "
                  f"with N > {done} to add more)", file=sys.stderr)
        observers = [] if args.quiet else [
            ProgressPrinter(
                target,
                study=shared.study,
                confirmations=config.confirmation.seeds,
                utility_name=config.objective.utility,
            )
        ]
        tensorboard = TensorBoardLogger(folder.tensorboard, config)
        try:
            study = run_study(prepared, shared, target=target, observers=[*observers, tensorboard])
            with shared.lock("recommend"):  # one worker confirms; the others reuse its cached retrains
                outcome = recommend(prepared, study)
            pngs = render_all(figure_data(study, config, outcome)) if outcome.records else None
            tensorboard.recommendation_made(study, outcome, summary_lines(prepared, outcome), pngs)
        finally:
            tensorboard.close()
            prepared.references.close()
            shared.close()
        return _finish(prepared, folder, study, outcome, pngs)


class Report(Command):
    name = "report"
    help = "rewrite report.md and trials.csv of a run folder from its study"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("run", type=Path, help="run folder written by `privtune tune`")
        parser.add_argument("--storage", help="Optuna RDB URL, if the study is not in the run folder")

    def take_action(self, args: argparse.Namespace) -> int:
        prepared, folder, study = _open_run(args.run, args.storage)
        outcome = recommend(prepared, study)
        return _finish(prepared, folder, study, outcome)


class Export(Command):
    name = "export"
    help = "write the run's recommendation as YAML or JSON"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("run", type=Path, help="run folder written by `privtune tune`")
        parser.add_argument("--format", choices=FORMATS, default="yaml")
        parser.add_argument("-o", "--output", type=Path, help="file to write (default: standard output)")
        parser.add_argument("--storage", help="Optuna RDB URL, if the study is not in the run folder")

    def take_action(self, args: argparse.Namespace) -> int:
        prepared, _, study = _open_run(args.run, args.storage)
        outcome = recommend(prepared, study)
        if outcome.chosen is None:
            raise NoAdequateDefenseError("the run has no adequate defense to export; see its report.md")
        text = render(recommendation_document(prepared, outcome, study_name=study.study_name), args.format)
        if args.output is None:
            sys.stdout.write(text)
        else:
            write_atomic(args.output, text)
            print(f"wrote {args.output}", file=sys.stderr)
        return 0


class Validate(Command):
    name = "validate"
    help = "check an exported recommendation file (exit 2 when it is invalid) and summarize it"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("file", type=Path, help="recommendation.yaml or .json written by `privtune export`")

    def take_action(self, args: argparse.Namespace) -> int:
        rec = load_recommendation(args.file)  # InvalidDefenseError -> exit 2 in main()
        document = rec.document
        expected = document.get("expected", {}).get("utility", {})
        print(f"{args.file}: valid (schema version {document['schema_version']})")
        print(f"  defense: {rec.defense.describe()}")
        print(
            f"  recipe: {rec.recipe.epochs} epochs, batch {rec.recipe.batch_size}, "
            f"{rec.recipe.optimizer} lr {rec.recipe.learning_rate:g}"
        )
        if "test" in expected:
            low, high = expected.get("test_interval", [float("nan")] * 2)
            print(f"  expected test {expected.get('metric', 'utility')}: {expected['test']:.4f} [{low:.4f}, {high:.4f}]")
        return 0


class Audit(Command):
    name = "audit"
    help = "worst-case audit of one defense (LiRA online, oracle thresholds) beside its realistic figures"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("config", nargs="?", help="YAML config (default: the built-in digits config)")
        parser.add_argument(
            "--defense", type=Path, help="an exported recommendation.yaml/.json (default: the undefended baseline)"
        )
        parser.add_argument("--shadow-models", type=int, help="LiRA-online shadow models (default: audit.shadow_models)")

    def take_action(self, args: argparse.Namespace) -> int:

        from defenses import DefenseConfig
        from tuner.audit import audit_text, run_audit

        config = load_config(args.config)
        shadows = config.audit.shadow_models if args.shadow_models is None else args.shadow_models
        if shadows < 4 or shadows % 2:
            raise ConfigError(f"--shadow-models: must be an even integer >= 4, but got {shadows}")
        defense, source, trial = DefenseConfig(), "the undefended baseline", 0
        document: dict = {}
        if args.defense is not None:
            rec = load_recommendation(args.defense)  # InvalidDefenseError -> exit 2 in main()
            config = replace(config, recipe=rec.recipe)
            defense, source, document = rec.defense, str(args.defense), dict(rec.document)
            trial = int((document.get("study") or {}).get("trial") or 0)
        prepared = prepare(config)  # its resolution warning is part of the printout below
        stored = (document.get("data") or {}).get("fingerprint")
        if stored and stored != prepared.roles.fingerprint:
            print(
                f"privtune: warning: {args.defense} was tuned on other data (fingerprint {str(stored)[:12]} vs "
                f"{prepared.roles.fingerprint[:12]}); auditing its settings on this config's data",
                file=sys.stderr,
            )
        print(f"privtune audit: training the target and {shadows} shadow models ...", file=sys.stderr, flush=True)
        result = run_audit(prepared.context, defense, shadow_models=shadows, trial_number=trial, source=source)
        print(audit_text(result, render_table=render_table), end="")
        return 0


COMMANDS: dict[str, Command] = {c.name: c for c in (Tune(), Report(), Export(), Validate(), Audit())}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="privtune",
        description="Tune a model's privacy defenses against realistic membership-inference risk.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS.values():
        command.add_arguments(sub.add_parser(command.name, help=command.help, description=command.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (see the module docstring)."""
    args = build_parser().parse_args(argv)
    # privtune prints its own progress and errors; Optuna's "trial failed" warning
    # would repeat an interrupted trial's traceback.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        return COMMANDS[args.command].take_action(args)
    except PrivtuneError as err:
        print(f"privtune: error: {err}", file=sys.stderr)
        return err.exit_code
    except InvalidDefenseError as err:
        print(f"privtune: error: {err}", file=sys.stderr)
        return ConfigError.exit_code
    except KeyboardInterrupt as stop:
        terminated = isinstance(stop, Terminated)
        print(f"privtune: {'terminated' if terminated else 'interrupted'}; finished trials are kept in the study",
              file=sys.stderr)
        return 143 if terminated else 130
    except OSError as err:  # an output path that cannot be written: a bad argument
        where = f" {err.filename}" if err.filename else ""
        print(f"privtune: error: cannot write{where}: {err.strerror or err}; choose a writable path", file=sys.stderr)
        return ConfigError.exit_code


def _print_warnings(prepared: Prepared) -> None:
    for warning in prepared.warnings:
        print(f"privtune: warning: {warning}", file=sys.stderr)


def _check_writable_folder(root: Path) -> None:
    """Refuse an --out that is a file (or under one) before anything is written."""
    for parent in (root, *root.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"--out: {root} is not a folder ({parent} is a file); choose a folder path")
            return


def _finish(
    prepared: Prepared,
    folder: RunFolder,
    study: optuna.Study,
    outcome: Recommendation,
    pngs: Mapping[str, bytes] | None = None,
) -> int:
    if not outcome.records:
        raise ConfigError(
            f"--trials: the study {study.study_name!r} has no completed trial to recommend from; "
            "run `privtune tune` with --trials 1 or more"
        )
    write_reports(folder, study, prepared, outcome, pngs)
    if outcome.chosen is not None:
        write_recommendation(folder, recommendation_document(prepared, outcome, study_name=study.study_name))
    print()
    print(render_table(frontier_rows(outcome.records, outcome.chosen), markdown=False), end="")
    print()
    print("\n".join(summary_lines(prepared, outcome)))
    print(f"\nrun folder: {folder.root}  (report.md, trials.csv, recommendation.yaml/json, tb/)")
    print(f"TensorBoard: tensorboard --logdir {folder.tensorboard}")
    return 0 if outcome.chosen is not None else NoAdequateDefenseError.exit_code


def _portable_config(config: RunConfig) -> dict:
    """The resolved config with data paths made absolute, so it loads from any folder."""
    resolved = config_to_dict(config)
    base = config.source.parent if config.source else Path.cwd()
    for key in ("path", "test_path"):
        value = resolved["data"].get(key)
        if value:
            resolved["data"][key] = str((base / value).resolve())
    # The user's code is imported from the config's folder unless python_path says otherwise.
    if resolved["data"].get("loader") and not resolved["data"].get("python_path"):
        resolved["data"]["python_path"] = [str(base.resolve())]
    if resolved["model"].get("builder") and not resolved["model"].get("python_path"):
        resolved["model"]["python_path"] = [str(base.resolve())]
    return resolved


def dry_run_text(prepared: Prepared, folder: RunFolder, *, n_trials: int, storage: str | None) -> str:
    """What `tune --dry-run` prints: the resolved config, the data, the roles, the model, the plan."""
    config, roles = prepared.config, prepared.roles
    lines = [
        "# resolved config (what `tune` would write to RUN/config.yaml)",
        yaml.safe_dump(_portable_config(config), sort_keys=False).rstrip(),
        "",
        f"data: {prepared.data_name}: {sum(roles.sizes().values())} records, {roles.n_features} features"
        + (f" (records of shape {tuple(roles.input_shape)})" if roles.input_shape else "")
        + f", {roles.n_classes} classes",
        "data roles: " + ", ".join(f"{k}={v}" for k, v in roles.sizes().items()),
        f"model: {_describe_model(prepared)}",
        f"device: {prepared.context.device}"
        + (f" ({prepared.threads} thread(s); training.threads: {config.threads})" if prepared.threads else ""),
        f"reference models: {prepared.context.n_reference_models}, trained "
        + ("in a second process beside the target" if prepared.references.processes == 2
           else "in this process after the target")
        + f" (training.processes: {config.processes})",
        "search space:\n  " + "\n  ".join(prepared.space.describe()),
        f"plan: a study of {n_trials} trial(s) (the baseline first; a continued study runs only what it lacks), "
        f"then {config.confirmation.seeds} "
        "confirmation retrain(s) of the recommendation",
        f"run folder: {folder.root} (storage {shown_url(storage or config.study.storage or folder.default_storage)})",
        "dry run: nothing was trained or written",
    ]
    return "\n".join(lines) + "\n"


def _describe_model(prepared: Prepared) -> str:
    from tuner.user_code import build_target_model

    config = prepared.config
    model = build_target_model(config, prepared.roles, dropout=0.0)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if config.model.builder is None:
        return f"built-in MLP, hidden sizes {list(config.recipe.hidden_sizes)}, {n_params} parameters"
    options = f" with options {dict(config.model.options)}" if config.model.options else ""
    return f"{config.model.builder}{options}, {n_params} parameters"


def _open_run(run: Path, storage: str | None) -> tuple[Prepared, RunFolder, optuna.Study]:
    folder = RunFolder(run)
    config_path = folder.root / RUN_CONFIG
    if not config_path.is_file():
        raise ConfigError(f"{run}: not a privtune run folder (no {RUN_CONFIG}); pass the folder `tune --out` wrote")
    config = load_config(config_path)
    prepared = prepare(config)
    url = storage or config.study.storage or folder.default_storage
    check_storage_url(url)
    try:
        study = optuna.load_study(study_name=config.study.name, storage=driver_url(url))
    except KeyError:
        raise ConfigError(f"{run}: no study named {config.study.name!r} in {shown_url(url)}") from None
    return prepared, folder, study


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so it stops as after Ctrl-C (the running trial marked failed)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def run() -> None:
    """The ``privtune`` command as a process: :func:`main`, then exit with its code.

    ``gc.freeze()`` after the imports moves the tens of thousands of objects
    torch, Opacus and scikit-learn create at import into the collector's
    permanent generation: the collections during the run, the copy-on-write
    pages of the forked reference-model helper (:mod:`tuner.helper_process`)
    and the final collection at interpreter shutdown no longer walk them.
    Only import-time objects are frozen: what the run creates (the study's
    database connections above all) is finalized at exit as usual, so a
    SQLite study's write-ahead log is checkpointed and removed.
    Measured with ``import tuner.cli`` alone: 2.97 s instead of 3.88 s to
    start and exit (median of 6 runs on a 2-core machine); see
    ``benchmarks/main_job_speedup.py`` for the whole main job.
    In-process callers (tests) use :func:`main`, which freezes nothing.

    SIGTERM is turned into :class:`Terminated` (a ``KeyboardInterrupt``):
    the running trial is marked failed, the helper process is closed, and
    the exit code is 143.
    """
    signal.signal(signal.SIGTERM, _raise_terminated)
    gc.freeze()
    raise SystemExit(main())


if __name__ == "__main__":
    run()
