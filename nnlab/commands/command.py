"""A command of the command line, declared once: its positional argument and its options
(each with default, type, meaning and allowed values), from which come the Fire dispatch,
the help page and the check of the command line before anything runs.

Fire hands every value over as the text typed (`SetParseFn(str)`: `007` stays `007`, `0,4`
stays `0,4`); a command converts its texts with nnlab.helpers.options. A repeatable option
typed several times reaches the command as one comma-joined text. Allowed values may be
named by reference ("module:NAME"), so that the module that checks them holds the only
copy and is imported only when a help page lists them.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass

from nnlab.helpers import options
from nnlab.helpers.errors import NnlabError, did_you_mean


def once(pairs: list[tuple[str, str]], hint: str = "") -> dict[str, str]:
    """--flags as typed, (key, text) in order, as a dict; a flag typed twice is refused in
    one line (never the silent last-one-wins), with `hint` after it."""
    seen: dict[str, str] = {}
    for key, text in pairs:
        if key in seen:
            raise NnlabError(f"--{key} is given twice{hint}")
        seen[key] = text
    return seen


@dataclass(frozen=True)
class Option:
    """One --option of a command."""

    name: str
    default: object
    type: type
    help: str
    choices: tuple[str, ...] | str = ()  # the values, or "module:NAME" of a tuple of them
    repeat: bool = False  # may be typed several times: the texts are joined by commas
    field: bool = False  # a config field, listed with the options for what it does there
    metavar: str = ""  # the value's name on the help page, when not its type's (FILE, DIR)

    def allowed(self) -> tuple[str, ...]:
        """The allowed values (imports the module that holds them, when named by reference)."""
        if isinstance(self.choices, str):
            module, _, name = self.choices.partition(":")
            return tuple(getattr(importlib.import_module(module), name))
        return self.choices


@dataclass(frozen=True)
class Positional:
    """A command's positional argument: one (optional or required), or many."""

    name: str  # the parameter of the command's function: run_id, model, run_ids
    shown: str  # as the usage line shows it: RUN_ID
    help: str
    many: bool = False
    optional: bool = False  # the usage line shows it in brackets


@dataclass(frozen=True)
class Command:
    """A command: the function that does it (its docstring is the page's text), its
    positional argument and its options; `fields` when it also takes config fields as
    --FIELD=VALUE (train and sweep), checked against the config by the command itself."""

    name: str
    run: Callable[..., str]
    positional: Positional | None
    options: tuple[Option, ...]
    fields: bool = False
    keep_argv: bool = False  # the command gets the command line as typed (sweep records it)

    def switches(self, tokens: list[str]) -> list[str]:
        """The tokens with each true/false option typed alone made explicit: in
        `nnlab summary --json RUN_ID` the run id is the positional argument, not the value
        of --json (a value is still read when it is a true/false word: --json false)."""
        bools = {f"--{o.name}" for o in self.options if o.type is bool}
        words = (*options.TRUE_WORDS, *options.FALSE_WORDS)
        out = []
        for i, tok in enumerate(tokens):
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            bare = nxt is None or options.is_flag(nxt) or nxt.lower() not in words
            out.append(f"{tok}=true" if tok in bools and bare else tok)
        return out

    def check(self, tokens: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
        """Refuse, before anything runs, what Fire would take up only after the work is done
        (or never): unknown options, stray arguments, Fire's own separators. Returns the
        positional arguments and every --flag with its text, in order (a command that takes
        config fields gets them so)."""
        for tok in tokens:
            if tok in ("-", "--"):  # Fire's own separators: nnlab has no use for them
                raise self._unexpected(tok)
        positional, flags = options.split_command_line(tokens)
        slots = 0 if self.positional is None else 1
        if len(positional) > slots and not (self.positional and self.positional.many):
            raise self._unexpected(positional[slots])
        if not self.fields:
            known = [o.name for o in self.options]
            for key, _ in flags:
                if key not in known:
                    hint = did_you_mean(key, known)
                    raise NnlabError(f"unknown option --{key} for '{self.name}'{hint}")
        return positional, flags

    def fire_tokens(self, tokens: list[str], positional, flags: list[tuple[str, str]]) -> list[str]:
        """The command's tokens for Fire (check's split of them given), each repeatable
        option's texts joined into one."""
        repeated = {o.name for o in self.options if o.repeat}
        if not repeated:
            return list(tokens)
        joined = {n: [v for k, v in flags if k == n] for n in repeated}
        kept = [f"--{k}={v}" for k, v in flags if k not in repeated]
        return [*positional, *kept, *(f"--{n}={','.join(v)}" for n, v in joined.items() if v)]

    def _unexpected(self, tok: str) -> NnlabError:
        one = self.positional and not self.positional.many
        takes = self.positional.name.upper() if one else ""
        return NnlabError(
            f"unexpected argument '{tok}': nnlab {self.name} takes {takes} and --options "
            f"(see nnlab {self.name} --help)"
        )

    def dispatcher(self, argv: list[str], flags: list[tuple[str, str]]) -> Callable[..., str]:
        """The function Fire calls, every value arriving as the text typed; options not typed
        get their declared defaults. A command that takes config fields gets the declared
        options and the fields as (key, text) pairs in the order typed, repeats kept (a
        sweep refuses a field given twice); with keep_argv, the command line as typed."""
        from fire import decorators

        command = self

        @decorators.SetParseFn(str)
        def call(*positional, **typed):
            args = [] if command.positional is None else list(positional)
            if command.positional is not None and not command.positional.many:
                args = [positional[0] if positional else None]
            if command.fields:
                declared = {o.name for o in command.options if not o.field}
                kwargs = {
                    "opts": [(k, v) for k, v in flags if k in declared],
                    "fields": [(k, v) for k, v in flags if k not in declared],
                }
            else:
                kwargs = {o.name: typed.get(o.name, o.default) for o in command.options}
            if command.keep_argv:
                kwargs["argv"] = argv
            return command.run(*args, **kwargs)

        call.__doc__ = self.run.__doc__
        return call

    def doc(self) -> tuple[str, list[str]]:
        """(first line, further paragraphs) of the command's docstring."""
        text = inspect.getdoc(self.run) or ""
        first, _, rest = text.partition("\n")
        return first.strip(), [p for p in rest.split("\n\n") if p.strip()]
