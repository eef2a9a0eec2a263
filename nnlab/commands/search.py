"""`nnlab sweep --search=random|tpe`: a search over a space of ranges and choices, its trials
proposed by Optuna, each trained as an ordinary run (a point of the sweep), poor ones pruned.

The study lives in the sweep's folder as Optuna's journal file (study.journal): an
append-only log of every ask, report and tell, which this process (the coordinator, the
only writer) repairs and reopens on `--resume`. sweep.json lists the points as they are
asked (point k is trial k). A proposal depends only on the trials told before it and on
(--search_seed, trial number): each ask gets a sampler seeded for its trial, so a resumed
study proposes what the uninterrupted one would have (with --jobs=1, where every trial
is told before the next is asked). Points report their metric to the pruner through
files in the sweep (store.sweeps.post_report); each answer is kept there and, before the
report itself, in the journal, so a point resumed before a report it made, or a report
asked again of a resumed coordinator, gets the same answer.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from nnlab import families
from nnlab.analysis import trials as trials_mod
from nnlab.commands import executors
from nnlab.config import space as spaces
from nnlab.helpers.errors import NnlabError, RunDamaged, did_you_mean
from nnlab.store import folders, sweeps
from nnlab.store.meta import Status

METHODS = ("grid", "random", "tpe")
PRUNERS = ("none", "median", "asha")
OPTIONS = ("trials", "metric", "direction", "search_seed", "prune", "prune_every")
DIRECTIONS = ("max", "min")
OPTUNA_HINT = 'pip install -e ".[search]" (or pip install "nnlab[search]")'
# each rung keeps the best quarter (Optuna's default; measured against 3 in
# benchmarks/search.py: 3 pruned the later best trials too early on the bundled sample)
ASHA_REDUCTION = 4
MEDIAN_STARTUP = 5  # the median pruner waits for this many trials (Optuna's default)
TPE_STARTUP_MAX = 10  # TPE's random start: Optuna's 10, or a quarter of a smaller study
DECISION_PREFIX = "nnlab_prune_at_"  # a trial's user attribute: the answer to its report


def optuna_module(method: str = "tpe"):
    """Optuna, quiet (its log lines would go to stderr per trial); a one-line error naming
    the extra when it is not installed."""
    try:
        import optuna
    except ImportError:
        raise NnlabError(
            f"--search={method} needs Optuna, which is not installed: {OPTUNA_HINT}"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


@dataclasses.dataclass
class Plan:
    """What a search is, as typed and as sweep.json keeps it."""

    method: str
    trials: int
    metric: str
    direction: str
    seed: int
    prune: str
    prune_every: float  # 0: epoch ends; >= 1: steps; < 1: a fraction of an epoch
    space: dict  # config.space.Space.as_record()

    def as_record(self) -> dict:
        """The plan as sweep.json's "search"."""
        return dataclasses.asdict(self)


def plan(opts, given: frozenset, the_space: spaces.Space, first) -> Plan:
    """The search's plan from the options typed, each checked (first: a trial's config)."""
    method = opts.search
    if method not in METHODS:
        raise NnlabError(f"--search: unknown value '{method}'{did_you_mean(method, METHODS)}")
    if opts.trials is None:
        raise NnlabError(f"--search={method} needs --trials=N: how many trials to run")
    if opts.trials > 100_000:
        raise NnlabError(f"--trials={opts.trials}: at most 100,000")
    objectives = families.of(first).objectives(first)
    metric = opts.metric or families.of(first).headline_key
    if metric not in objectives:
        raise NnlabError(
            f"--metric={metric}: no {first.model} run writes it{did_you_mean(metric, objectives)}; "
            f"these do: {', '.join(objectives)}"
        )
    direction = opts.direction or objectives[metric]
    if direction not in DIRECTIONS:
        raise NnlabError(f"--direction={direction}: use max or min")
    prune = opts.prune
    if prune not in PRUNERS:
        raise NnlabError(f"--prune: unknown value '{prune}'{did_you_mean(prune, PRUNERS)}")
    every = 0.0
    if opts.prune_every is not None:
        if prune == "none":
            raise NnlabError("--prune_every applies with a pruner: add --prune=asha (or median)")
        every = opts.prune_every
    elif prune != "none" and first.epochs <= 1 and "epochs" not in the_space.params:
        # a trial reports at the ends of its epochs but the last: one epoch, no report
        raise NnlabError(
            f"--prune={prune}: trials of one epoch would never report before their end: add "
            "--prune_every=0.25 (a fraction of an epoch) or a number of steps"
        )
    seed = opts.search_seed
    return Plan(method, opts.trials, metric, direction, seed, prune, every, the_space.as_record())


def prune_every(text: str, name: str = "prune_every") -> float:
    """--prune_every: a whole number of steps, or a fraction of an epoch below 1."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (0 < value < 1 or (value >= 1 and value.is_integer())) or not math.isfinite(value):
        raise NnlabError(
            f"--{name}={text}: give a whole number of steps (e.g. 50) or a fraction of "
            "an epoch below 1 (e.g. 0.25)"
        )
    return value


def check_options(opts, given: frozenset) -> None:
    """Search options typed without a search: one line saying what they need."""
    if opts.search != "grid":
        return
    typed = [k for k in OPTIONS if k in given]
    if typed:
        raise NnlabError(
            f"--{typed[0]} applies to a search: add --search=tpe (or random) and give ranges, "
            "e.g. --lr=log:1e-4..1e-2"
        )


def every_words(every: float) -> str:
    """--prune_every in words."""
    if not every:
        return "each epoch's end"
    if every >= 1:
        return f"every {int(every)} steps and each epoch's end"
    return f"every {every:g} of an epoch"


# ---------------------------------------------------------------- the study


class Study:
    """A search's Optuna study in the sweep's journal file: asks, reports and tells."""

    def __init__(self, sweep: sweeps.Sweep, the_plan: Plan):
        optuna = optuna_module(the_plan.method)
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage

        self.optuna, self.plan = optuna, the_plan
        self.params = spaces.from_record(the_plan.space)
        path = sweep.file(folders.JOURNAL_FILE)
        _repair(path)
        lock = JournalFileOpenLock(str(path) + ".lock", grace_period=30)
        direction = "maximize" if the_plan.direction == "max" else "minimize"
        try:  # the journal is read here: a line that is not Optuna's is damage
            storage = JournalStorage(JournalFileBackend(str(path), lock_obj=lock))
            self.study = optuna.create_study(
                study_name="nnlab", storage=storage, direction=direction, load_if_exists=True
            )
            self.study.get_trials(deepcopy=False)  # read every line now: damage shows here
        except (ValueError, KeyError, TypeError, IndexError) as e:  # a line not Optuna's
            first = (str(e).splitlines() or [type(e).__name__])[0][:120]
            raise RunDamaged(f"{path}: damaged ({first}); the search cannot go on") from None
        self.dists = {k: spaces.distribution(optuna, p) for k, p in self.params.items()}

    def trials(self) -> list:
        """Every trial so far (Optuna's FrozenTrial), by number."""
        return self.study.get_trials(deepcopy=False)

    def ask(self) -> tuple[int, dict]:
        """A new trial: its number and its config values. The sampler proposes on an
        in-memory copy of the study, and the trial goes into the journal as one line with
        its values: a kill can never leave a trial asked without them."""
        optuna = self.optuna
        trials = self.trials()
        shadow, _ = self._copy(trials, self._sampler(len(trials)))
        proposed = shadow.ask(self.dists)
        self.study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.RUNNING,
                params=proposed.params,
                distributions=self.dists,
            )
        )
        return proposed.number, spaces.values_of(self.params, proposed.params)

    def _sampler(self, n: int):
        import numpy as np

        # well-mixed seeds: consecutive integers would give Mersenne Twisters whose first
        # draws need not look independent over a handful of trials
        seed = int(np.random.SeedSequence([self.plan.seed, n]).generate_state(1)[0])
        samplers = self.optuna.samplers
        if self.plan.method == "random":
            return samplers.RandomSampler(seed=seed)
        import warnings

        with warnings.catch_warnings():  # multivariate TPE is marked experimental
            warnings.simplefilter("ignore")
            return samplers.TPESampler(
                seed=seed,
                n_startup_trials=min(TPE_STARTUP_MAX, max(2, self.plan.trials // 4)),
                multivariate=True,
                constant_liar=True,
            )

    def _pruner(self):
        pruners = self.optuna.pruners
        if self.plan.prune == "median":
            return pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP)
        # ASHA's first rung: the first label any trial reported, kept in the study so that
        # a resumed coordinator uses the same rungs
        first = self.study.user_attrs.get("first_report")
        return pruners.SuccessiveHalvingPruner(
            min_resource=int(first), reduction_factor=ASHA_REDUCTION
        )

    def decide(self, number: int, label: int, value: float) -> bool:
        """Trial `number` reported `value` at `label`: whether to prune it. The answer is
        worked out on an in-memory copy of the study and entered in the journal before the
        report and the pruner's state, so that a coordinator killed at any line, resumed,
        gives the report it is asked again the same answer (ASHA's rungs, once entered,
        would answer a second asking with "go on")."""
        trials = self.trials()
        frozen = trials[number]
        if frozen.state != self.optuna.trial.TrialState.RUNNING:
            return False
        key = f"{DECISION_PREFIX}{int(label)}"
        if key in frozen.user_attrs:  # answered before the coordinator was killed
            return bool(frozen.user_attrs[key])
        if "first_report" not in self.study.user_attrs:
            self.study.set_user_attr("first_report", int(label))
        prune, after = self._decide_on_a_copy(trials, frozen, int(label), float(value))
        storage, tid = self.study._storage, frozen._trial_id
        storage.set_trial_user_attr(tid, key, prune)
        if int(label) not in frozen.intermediate_values:
            storage.set_trial_intermediate_value(tid, int(label), float(value))
        for k, v in after.system_attrs.items():  # the rungs ASHA completed at this report
            if frozen.system_attrs.get(k) != v:
                storage.set_trial_system_attr(tid, k, v)
        return prune

    def _decide_on_a_copy(self, trials: list, frozen, label: int, value: float):
        """(prune, the trial as the pruner left it) on an in-memory copy of the study."""
        shadow, ids = self._copy(trials)
        copy = shadow._storage.get_trial(ids[frozen.number])
        trial = self.optuna.trial.Trial(shadow, copy._trial_id)
        if label not in copy.intermediate_values:
            trial.report(value, label)
        shadow.pruner = self._pruner()
        prune = bool(trial.should_prune())
        return prune, shadow._storage.get_trial(copy._trial_id)

    def _copy(self, trials: list, sampler=None):
        """An in-memory copy of the study's trials, and its trial ids by their numbers."""
        shadow = self.optuna.create_study(direction=self.study.direction, sampler=sampler)
        added = []
        for t in trials:
            try:
                shadow.add_trial(t)
            except ValueError:  # values outside the space: refused at --resume, not learnt from
                continue
            added.append(t.number)
        copies = shadow.get_trials(deepcopy=False)  # in the order they were added
        return shadow, {n: c._trial_id for n, c in zip(added, copies, strict=True)}

    def tell(self, number: int, status: str, value: float | None) -> None:
        """Trial `number` ended: finished (with its metric), pruned, diverged or failed. A
        diverged trial that reported is told as pruned at its last report, so that TPE
        learns to avoid where it went (a failed trial is ignored by the sampler)."""
        states = self.optuna.trial.TrialState
        frozen = self.trials()[number]
        if frozen.state != states.RUNNING:
            return  # told before the coordinator was stopped
        if status == Status.PRUNED or (status == Status.DIVERGED and frozen.intermediate_values):
            self.study.tell(number, state=states.PRUNED)
        elif status == Status.FINISHED and value is not None and math.isfinite(value):
            self.study.tell(number, value)
        else:
            self.study.tell(number, state=states.FAIL)


def _repair(path: Path) -> None:
    """Cut a journal's last line if a kill left it half-written (the coordinator is its only
    writer, under the sweep's lock): Optuna would refuse the next line after it."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


# ---------------------------------------------------------------- the feed


class SearchFeed(executors.Feed):
    """A search's points for the executor: trials to go on with first, then one new trial
    asked each time a worker is free; pruning answered while they run, tells as they end."""

    def __init__(self, sweep: sweeps.Sweep, rec: dict, study: Study, todo: list[int]):
        super().__init__(todo)
        self.sweep, self.rec, self.study = sweep, rec, study
        self.left = study.plan.trials - len(rec["points"])

    def __len__(self) -> int:
        return len(self.queue) + max(self.left, 0)

    def take(self) -> int:
        """A trial to go on with, else a new one, its point written to sweep.json first."""
        if self.queue:
            return self.queue.popleft()
        number, values = self.study.ask()
        points = self.rec["points"]
        if number != len(points):  # never: the journal and sweep.json were reconciled
            raise NnlabError(f"sweep {self.sweep.id}: trial {number} for point {len(points)}")
        points.append(new_point(self.sweep.id, number, self.study.plan.trials, values))
        self.rec["updated"] = folders.now_iso()
        self.sweep.write_record(self.rec)
        self.left -= 1
        return number

    def poll(self, running: list[int]) -> None:
        """Answer the running points' reports."""
        if self.study.plan.prune == "none":
            return
        for i in running:
            report = sweeps.pending_report(self.sweep, i)
            if report is not None:
                label, value = report
                prune = self.study.decide(i, label, value)
                sweeps.post_answer(self.sweep, i, label, prune)

    def in_flight(self, jobs: int) -> int:
        """A search asks as workers free up: at most --jobs trials at once, on Ray too."""
        return jobs

    def ended(self, index: int, status: str) -> None:
        """Tell the study how point index ended (an interrupted one goes on at --resume)."""
        if status not in sweeps.ENDED:
            return
        point = self.rec["points"][index]
        value = None
        if status == Status.FINISHED:
            value = trials_mod.final_value(self.sweep.root, point["run"], self.study.plan.metric)
            if value is None:
                point["error"] = f"its run has no {self.study.plan.metric}"
        self.study.tell(index, status, value)
        frozen = self.study.trials()[index]
        point["value"] = frozen.value if status == Status.FINISHED else _last_reported(frozen)

    def reconcile(self) -> list[int]:
        """On --resume: points for trials asked but not yet in sweep.json, tells the study
        missed, and the trials to go on with."""
        states = self.study.optuna.trial.TrialState
        trials, points = self.study.trials(), self.rec["points"]
        journal = self.sweep.file(folders.JOURNAL_FILE)
        if len(trials) < len(points):
            raise RunDamaged(
                f"{journal}: damaged (it holds {len(trials)} trials, sweep.json "
                f"{len(points)} points)"
            )
        planned = self.study.plan.trials
        for t in trials[planned:]:  # a line entered twice: more trials than the search has
            if t.state == states.RUNNING:
                self.study.study.tell(t.number, state=states.FAIL)
        for t in trials[len(points) : planned]:
            values = spaces.values_of(self.study.params, t.params)
            points.append(new_point(self.sweep.id, t.number, planned, values))
        todo = []
        for i, point in enumerate(points):
            wrong = spaces.outside(self.study.params, point["values"])
            if wrong:  # never trained: a forged trial would fail every later resume
                if trials[i].state == states.RUNNING:
                    self.study.study.tell(i, state=states.FAIL)
                point.update(status=Status.FAILED, error=f"values outside the search: {wrong}")
                continue
            status = self.sweep.point_status(self.rec, i)
            run_ended = status in (
                Status.FINISHED,
                Status.PRUNED,
                Status.DIVERGED,
            )  # as its run says
            if trials[i].state == states.RUNNING:
                point["status"] = status
                if run_ended:
                    self.ended(i, status)
                else:
                    todo.append(i)
            elif not run_ended:  # told already: failed, unless sweep.json says how it ended
                point["status"] = (
                    point["status"] if point["status"] in sweeps.ENDED else Status.FAILED
                )
            else:
                point["status"] = status
        self.queue.extend(todo)
        self.left = self.study.plan.trials - len(points)
        return todo


def _last_reported(frozen) -> float | None:
    if not frozen.intermediate_values:
        return None
    value = frozen.intermediate_values[max(frozen.intermediate_values)]
    return value if math.isfinite(value) else None


def new_point(sweep_id: str, number: int, trials: int, values: dict) -> dict:
    """sweep.json's entry of a new trial's point."""
    return {
        "run": sweeps.point_run_id(sweep_id, number, trials),
        "values": values,
        "status": Status.PENDING,
        "attempts": 0,
        "error": None,
        "value": None,
    }
