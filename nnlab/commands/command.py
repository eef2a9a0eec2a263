"""A command of the command line, declared once: its positional argument and one frozen
dataclass of its options, each field with its default, type, meaning, allowed values and the
function that converts the text typed (nnlab.helpers.options.option). From that declaration
come the help page, the check of the command line before anything runs and the one parse of
it: the command's function gets an instance of the dataclass, every value converted once.

An option whose allowed values depend on the run (--classes, --units, --layer, --task) stays
the text typed, and the library reads it against the run. A repeatable option typed several
times arrives as one comma-joined text before it is converted. Allowed values and converters
may be named by reference ("module:NAME"), so that the module that checks them holds the
only copy and is imported only when it is needed. Fire dispatches the parsed call and prints
its result.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

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


def _by_reference(ref: str):
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Option:
    """One --option of a command, as its options dataclass declares it."""

    name: str
    default: object
    type: type
    help: str
    choices: tuple[str, ...] | str = ()  # the values, or "module:NAME" of a tuple of them
    repeat: bool = False  # may be typed several times: the texts are joined by commas
    field: bool = False  # a config field, listed with the options for what it does there
    metavar: str = ""  # the value's name on the help page, when not its type's (FILE, DIR)
    convert: Callable | str | None = None  # (text, name) -> value; None: by type

    @classmethod
    def of(cls, f: dataclasses.Field, typ) -> Option:
        """The option a field of a command's options dataclass declares (typ: its type)."""
        m = f.metadata
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        keys = ("choices", "repeat", "metavar", "convert")
        return cls(
            f.name,
            default,
            typ,
            m["help"],
            field=m.get("config_field", False),
            **{k: m[k] for k in keys if k in m},
        )

    def allowed(self) -> tuple[str, ...]:
        """The allowed values (imports the module that holds them, when named by reference)."""
        if isinstance(self.choices, str):
            return tuple(_by_reference(self.choices))
        return self.choices

    def value(self, text: str):
        """The text typed, converted once: by the declared converter, else by the type (a
        true/false word for a switch, the text itself otherwise); a value outside the
        declared choices is refused here, before anything loads."""
        convert = self.convert
        if isinstance(convert, str):
            convert = _by_reference(convert)
        if convert is not None:
            return convert(text, self.name)
        if self.type is bool:
            return options.parse_bool(text, self.name)
        allowed = self.allowed()
        if allowed and text not in allowed:
            hint = did_you_mean(text, allowed)
            hint = hint if hint.startswith(" (did you mean") else ""
            raise NnlabError(f"--{self.name}={text}: choose from {', '.join(allowed)}{hint}")
        return text


def options_of(cls: type) -> tuple[Option, ...]:
    """The options a command's options dataclass declares, in order."""
    hints = typing.get_type_hints(cls)
    return tuple(Option.of(f, hints[f.name]) for f in dataclasses.fields(cls))


@dataclass(frozen=True)
class Positional:
    """A command's positional argument: one (optional or required), or many."""

    name: str  # the parameter of the command's function: run_id, model, run_ids
    shown: str  # as the usage line shows it: RUN_ID
    help: str
    many: bool = False
    optional: bool = False  # the usage line shows it in brackets


@dataclass(frozen=True)
class Parsed:
    """A command line, parsed once: the positional arguments, the options object (every
    value converted), the names typed, and the config fields as (key, text) in order."""

    positional: list[str]
    opts: object
    given: frozenset[str]
    fields: list[tuple[str, str]]


@dataclass(frozen=True)
class Command:
    """A command: the function that does it (its docstring is the page's text), its
    positional argument and its options dataclass; `fields` when it also takes config fields
    as --FIELD=VALUE (train and sweep), checked against the config by the command itself."""

    name: str
    run: Callable[..., str]
    positional: Positional | None
    options_type: type
    fields: bool = False
    keep_argv: bool = False  # the command gets the command line as typed (sweep records it)
    twice: str = ""  # said after "--X is given twice" (a flag typed twice is refused)

    @cached_property
    def options(self) -> tuple[Option, ...]:
        """The declared options, in order."""
        return options_of(self.options_type)

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

    def parse(self, tokens: list[str]) -> Parsed:
        """The command line after the command's name, checked and converted once, before
        anything runs: unknown options, stray arguments, Fire's own separators and a flag
        typed twice are refused in one line."""
        for tok in tokens:
            if tok in ("-", "--"):  # Fire's own separators: nnlab has no use for them
                raise self._unexpected(tok)
        positional, flags = options.split_command_line(self.switches(tokens))
        slots = 0 if self.positional is None else 1
        if len(positional) > slots and not (self.positional and self.positional.many):
            raise self._unexpected(positional[slots])
        own = {o.name: o for o in self.options if not o.field}
        if not self.fields:
            for key, _ in flags:
                if key not in own:
                    hint = did_you_mean(key, list(own))
                    raise NnlabError(f"unknown option --{key} for '{self.name}'{hint}")
        typed = [(k, v) for k, v in flags if k in own]
        for name in (o.name for o in own.values() if o.repeat):
            texts = [v for k, v in typed if k == name]
            if texts:
                typed = [(k, v) for k, v in typed if k != name] + [(name, ",".join(texts))]
        texts = once(typed, self.twice)
        values = {k: own[k].value(v) for k, v in texts.items()}
        fields = [(k, v) for k, v in flags if k not in own] if self.fields else []
        return Parsed(positional, self.options_type(**values), frozenset(values), fields)

    def _unexpected(self, tok: str) -> NnlabError:
        one = self.positional and not self.positional.many
        takes = self.positional.name.upper() if one else ""
        return NnlabError(
            f"unexpected argument '{tok}': nnlab {self.name} takes {takes} and --options "
            f"(see nnlab {self.name} --help)"
        )

    def bind(self, parsed: Parsed, argv: list[str]) -> Callable[[], str]:
        """The command's function with the parsed command line bound, for Fire to call: the
        positional argument(s), the options object and, for a command that takes config
        fields, the names typed and the fields; with keep_argv, the command line as typed."""
        args = list(parsed.positional)
        if self.positional is not None and not self.positional.many:
            args = [args[0] if args else None]
        kwargs: dict = {"opts": parsed.opts}
        if self.fields:
            kwargs.update(given=parsed.given, fields=parsed.fields)
        if self.keep_argv:
            kwargs["argv"] = argv

        def call():
            return self.run(*args, **kwargs)

        call.__doc__ = self.run.__doc__
        return call

    def doc(self) -> tuple[str, list[str]]:
        """(first line, further paragraphs) of the command's docstring."""
        text = inspect.getdoc(self.run) or ""
        first, _, rest = text.partition("\n")
        return first.strip(), [p for p in rest.split("\n\n") if p.strip()]
