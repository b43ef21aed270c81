"""The one place that reads and validates `params.yaml`; the paper's defaults live here.

Every stage reads its settings from here and only paths travel on the command line, so
DVC and Snakemake see every setting as a tracked parameter. Users set values with
`dvc exp run -S section.key=value`, so field names never change (DESIGN.md section 5).

A params file must spell out every section; a key left out of a section takes the
paper's value (the field defaults below: the only place those values are written).
Whatever else a user can get wrong (a NaN, a seed numpy refuses, a duplicate or unknown
key, a file that is not UTF-8 YAML) is a `UserError` of one line naming file and setting.

Numbers keep the type they were written with (`temperature: 1` stays the int 1): the
search's checkpoint key hashes these values, and validating must not change it.
"""

import os
from typing import Annotated, Any, Literal, Mapping, Optional, Union

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt,
                      StrictStr, ValidationError, ValidationInfo, model_validator)

from minigen.errors import UserError
from minigen.settings import text

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"

SEED_LIMIT = 2**32  # numpy's legacy seeding and torch's generators both take [0, 2**32)
MAX_COUNT = 1_000_000  # any count (epochs, population, images): far beyond use, far below int64
MAX_WORKERS = 256
MAX_CHANNELS = 4096  # refused here rather than by torch (or the OOM killer) mid-search
MAX_BLOCKS = 64
MAX_FILE_BYTES = 1 << 16  # a params file is 2 KB; this bounds the time spent on a wrong file
UNKEYED_SEARCH_SETTINGS = ("workers", "device")  # speed only: never in a result's key
DATASETS = ("cifar10", "digits")
PRECISIONS = ("fp32", "bf16", "tf32")
RECIPES = ("paper", "modern")
STRATEGIES = ("evolution", "random")  # one module each in minigen/space/strategies/
ARM_SECTIONS = ("space", "search", "retrain")  # what a study arm may override


# ---------------------------------------------------------------- value types
# Each type carries the words of its error message: "search.lr must be <description>".


def _finite(value: int | float) -> int | float:
    try:
        float(value)
    except OverflowError:  # an int too large for a float: refused like inf
        raise ValueError("not finite") from None
    return value


def _real(description: str, **bounds: float) -> Any:
    """A finite int or float within `bounds` (ge, gt, le, lt), kept as written."""
    number = Union[StrictInt, Annotated[StrictFloat, Field(allow_inf_nan=False)]]
    return Annotated[number, AfterValidator(_finite), Field(description=description, **bounds)]


def _integer(low: int, high: int) -> Any:
    return Annotated[StrictInt, Field(ge=low, le=high, description=f"an integer in [{low}, {high}]")]


def _choice(*options: str) -> Any:
    return Annotated[Literal[options], Field(description=f"one of {', '.join(options)}")]


def _distinct(values: list) -> list:
    if len(set(values)) != len(values):
        raise ValueError("repeated values")
    return values


Count = _integer(1, MAX_COUNT)
Positive = _real("a finite number > 0", gt=0)
NonNegative = _real("a finite number >= 0", ge=0)
Probability = _real("a probability: a finite number in [0, 1]", ge=0, le=1)
Fraction = _real("a finite number in [0, 1)", ge=0, lt=1)
Seed = Annotated[StrictInt, Field(ge=0, lt=SEED_LIMIT, description="an integer in [0, 2**32)")]
Seeds = Annotated[list[Seed], AfterValidator(_distinct)]
Device = Annotated[StrictStr, Field(pattern=r"^(auto|cpu|cuda(:[0-9]{1,3})?)$",
                                    description="auto, cpu, cuda or cuda:N")]
Text = Annotated[StrictStr, Field(pattern=r"^[^\x00-\x1f]*$")]  # no NUL or newline in a path


class Section(BaseModel):
    # strict: no bool as int, no "1" as 1; forbid: a misspelt key is an error, not ignored.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


# ---------------------------------------------------------------- the sections


class Data(Section):
    dataset: _choice(*DATASETS) = "cifar10"
    archive: Optional[Text] = Field(None, description="a path (text) or null")
    url: Optional[Text] = Field(CIFAR10_URL, description="a URL (text) or null")
    archive_md5: StrictStr = Field(CIFAR10_MD5, pattern=r"^[0-9a-fA-F]{32}$",
                                   description="a 32-digit hex md5 (quote it in params.yaml)")
    train_per_class: Count = 100
    test_per_class: Count = 10


class Space(Section):
    channels: Annotated[list[_integer(1, MAX_CHANNELS)], AfterValidator(_distinct)] = Field(
        [24, 40, 64, 80, 128, 256], min_length=1, max_length=64,
        description=f"a list of 1 to 64 distinct integers in [1, {MAX_CHANNELS}]")
    blocks: list[_integer(1, MAX_BLOCKS)] = Field(
        [1, 1, 1, 1], min_length=4, max_length=4,
        description=f"a list of 4 integers in [1, {MAX_BLOCKS}] (blocks of cells 1-4)")
    p_identity: Probability = 0.5


class Search(Section):
    population: Count = 15
    keep: Count = 5
    generations: Count = 25
    epochs: Count = 20
    batch_size: Count = 64
    lr: Positive = 0.001
    decay: NonNegative = 0.01
    temperature: Positive = 1.0
    p_channel: Probability = 0.3
    p_op: Probability = 0.5
    p_action_list: Probability = 0.2
    depth_ramp: StrictBool = Field(False, description="true or false")
    restart_threshold: Probability = 0.35
    winner_threshold: Probability = 0.40
    winners: Count = 10
    max_rounds: Count = 20
    strategy: _choice(*STRATEGIES) = "evolution"
    # Random search only: the number of distinct networks to evaluate (null: stop as the evolution does).
    budget: Optional[_integer(1, MAX_COUNT)] = Field(None, description=f"an integer in [1, {MAX_COUNT}] or null")
    device: Device = "auto"
    precision: _choice(*PRECISIONS) = "fp32"
    workers: _integer(1, MAX_WORKERS) = 1

    @model_validator(mode="after")
    def _keep_fits(self) -> "Search":
        if self.keep > self.population:
            raise ValueError(f"search.keep ({self.keep}) must not exceed search.population ({self.population})")
        return self

    @model_validator(mode="after")
    def _budget_fits(self) -> "Search":
        if self.budget is None:
            return self
        if self.strategy != "random":
            raise ValueError(f"search.budget is for search.strategy random; {self.strategy} stops at "
                             "search.winners or search.max_rounds")
        most = self.max_rounds * (self.population + (self.generations - 1) * (self.population - self.keep))
        if not self.population <= self.budget <= most:
            raise ValueError(f"search.budget ({self.budget}) must lie in [search.population, {most}]: "
                             "from one full generation to every network max_rounds rounds can evaluate")
        return self

    def keyed(self) -> dict:
        """The settings that decide the search's result: all but workers and device."""
        return self.model_dump(exclude=set(UNKEYED_SEARCH_SETTINGS))


class Collect(Section):
    top_k: Count = 10
    # range(top_k) spelled out: DVC's `foreach` needs a list to fan `retrain` out over and
    # cannot count. Left out (null), it follows top_k.
    indices: Optional[list[StrictInt]] = Field(None, description="[0, 1, ..., top_k - 1] or null")

    @model_validator(mode="before")
    @classmethod
    def _fill_indices(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("indices") is None:
            top_k = data.get("top_k", cls.model_fields["top_k"].default)
            if type(top_k) is int and 1 <= top_k <= MAX_COUNT:  # else top_k's own error says it
                return {**data, "indices": list(range(top_k))}
        return data

    @model_validator(mode="after")
    def _indices_follow_top_k(self) -> "Collect":
        if self.indices != list(range(self.top_k)):
            raise ValueError(
                f"collect.indices must be [0, ..., {self.top_k - 1}] to match collect.top_k={self.top_k} "
                f"(dvc.yaml runs one retrain stage per index), got {text.show(self.indices)}")
        return self


class Retrain(Section):
    epochs: Count = 340
    recipe: _choice(*RECIPES) = "paper"
    batch_size: Count = 64
    lr: Positive = 0.001  # the paper recipe (Adam)
    device: Device = "auto"
    # The `modern` recipe only (SGD + Nesterov, warm-up then cosine, label smoothing).
    modern_lr: Positive = 0.05
    momentum: Fraction = 0.9
    weight_decay: NonNegative = 0.0005
    label_smoothing: Fraction = 0.1
    warmup_epochs: _integer(0, MAX_COUNT) = 2
    # Each genome is retrained once per seed (the paper: once, with `seed`); spelled out,
    # as DVC's `matrix` needs. Left out (null), it is [seed] (`Params` fills it in).
    seeds: Optional[Seeds] = Field(
        None, min_length=1, max_length=64, description="a list of 1 to 64 distinct seeds in [0, 2**32), or null")


ArmName = Annotated[StrictStr, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$", description="a name of 1 to 32 "
                                     "lower-case letters, digits and _, starting with a letter")]
Overrides = dict[_choice(*ARM_SECTIONS), dict[StrictStr, Any]]


class Study(Section):
    """`minigen study`: every arm (overrides of the settings above) searched and its best
    genome retrained, once per seed; the arms compared with the reference (README)."""

    reference: ArmName = "evolution"
    arms: dict[ArmName, Overrides] = Field(
        {"evolution": {}, "random": {"search": {"strategy": "random"}}, "no_decay": {"search": {"decay": 0}}},
        min_length=1, max_length=16, description="a mapping of 1 to 16 arm names (lower-case letters, "
        "digits, _) to overrides of the space, search and retrain sections")
    # The arms but the reference, spelled out: DVC's `matrix` cannot leave one out. Null follows arms.
    compared: Optional[list[ArmName]] = Field(None, description="study.arms without study.reference, or null")
    seeds: Seeds = Field(
        [2809, 2810, 2811], min_length=1, max_length=64, description="a list of 1 to 64 distinct seeds in [0, 2**32)")
    retrain_epochs: Count = 340

    @model_validator(mode="before")
    @classmethod
    def _fill_compared(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("compared") is None:
            arms = data.get("arms", cls.model_fields["arms"].default)
            reference = data.get("reference", cls.model_fields["reference"].default)
            if isinstance(arms, dict) and isinstance(reference, str):  # else their own errors say it
                return {**data, "compared": [arm for arm in arms if arm != reference]}
        return data

    @model_validator(mode="after")
    def _arms_fit(self) -> "Study":
        if self.reference not in self.arms:
            raise ValueError(f"study.reference ({self.reference}) must name one of study.arms ({', '.join(self.arms)})")
        others = [arm for arm in self.arms if arm != self.reference]
        if sorted(self.compared) != sorted(others):  # in any order, the report's (a YAML dump sorts arms)
            raise ValueError(f"study.compared must be {others} to match study.arms and study.reference "
                             f"(dvc runs one job per compared arm and seed), got {text.show(self.compared)}")
        for arm, overrides in self.arms.items():
            if "epochs" in overrides.get("retrain", {}):
                raise ValueError(f"study.arms.{arm} sets retrain.epochs: set study.retrain_epochs instead")
        return self


class Params(Section):
    """Every setting of the pipeline; `Params()` is the paper's."""

    seed: Seed = 2809
    data: Data = Data()
    space: Space = Space()
    search: Search = Search()
    collect: Collect = Collect()
    retrain: Retrain = Retrain()
    study: Study = Study()

    @model_validator(mode="before")
    @classmethod
    def _fill_retrain_seeds(cls, data: Any) -> Any:
        """retrain.seeds left out or null: [seed], the paper's single retrain."""
        if not isinstance(data, dict):
            return data
        retrain = data.get("retrain", {})
        seed = data.get("seed", cls.model_fields["seed"].default)
        if isinstance(retrain, dict) and retrain.get("seeds") is None and type(seed) is int:
            return {**data, "retrain": {**retrain, "seeds": [seed]}}
        return data

    @model_validator(mode="after")
    def _arms_apply(self, info: ValidationInfo) -> "Params":
        if not (info.context or {}).get("arm"):  # an arm's own settings were built from checked ones
            for arm in self.study.arms:
                arm_settings(self, arm)
        return self


def arm_settings(params: Params, arm: str, seed: int | None = None) -> Params:
    """What study arm `arm`'s jobs run with: these settings, the arm's overrides, the study's
    retrain epochs and `seed` (None: keep `seed`). A bad override is a ValueError in words."""
    tree = params.model_dump()
    for section, values in params.study.arms[arm].items():
        tree[section] = {**tree[section], **values}
    tree["retrain"]["epochs"] = params.study.retrain_epochs
    tree["seed"] = params.seed if seed is None else seed
    tree["retrain"]["seeds"] = [tree["seed"]]  # one retrain per arm and seed, with that seed
    try:
        return Params.model_validate(tree, context={"arm": arm})
    except ValidationError as exc:
        raise ValueError(f"study.arms.{arm}: {text.one_line(exc, tree, Params)}") from None


SECTIONS = tuple(Params.model_fields)
PAPER = Params()


def as_dict(params: Params) -> dict:
    """The plain nested dict the stages pass around (and hash for their keys)."""
    return params.model_dump()


DEFAULTS: dict = as_dict(PAPER)  # a template for params built in code (tests, tools)
DEFAULTS["collect"]["indices"] = None  # so a copy with another top_k needs no new indices
DEFAULTS["study"]["compared"] = None  # so a copy with other arms needs no new list
DEFAULTS["retrain"]["seeds"] = None  # so a copy with another seed retrains with it


# ---------------------------------------------------------------- loading


def load(path: str | os.PathLike | None = "params.yaml") -> dict:
    """The validated settings of the file at `path` as a nested dict; None: the paper's."""
    return as_dict(read(path))


def read(path: str | os.PathLike | None = "params.yaml") -> Params:
    """The validated settings of the file at `path`; None: the paper's."""
    if path is None:
        return PAPER
    name = text.show_name(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise UserError(f"params file not found: {name}") from None
    except OSError as exc:
        raise UserError(f"cannot read params file {name}: {exc.strerror or type(exc).__name__}") from None
    if len(data) > MAX_FILE_BYTES:
        raise UserError(f"{name}: larger than {MAX_FILE_BYTES} bytes; is it really a params file?")
    return parse(data, name)


def parse(data: bytes | str, source: str = "params.yaml") -> Params:
    """Validated settings from a params file's content; `source` names it in errors."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(f"{source}: not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start})") from None
    return from_tree(text.parse_yaml(data, source), source)


def from_tree(tree: Any, source: str = "params.yaml") -> Params:
    """Validated settings from a parsed params file: every section must be present."""
    wanted = f"every section must be spelled out: {', '.join(SECTIONS)}"
    if tree is None:
        raise UserError(f"{source}: the file is empty; {wanted}")
    if not isinstance(tree, dict):
        raise UserError(f"{source}: must be a mapping of sections, got {type(tree).__name__} {text.show(tree)}")
    missing = [section for section in SECTIONS if section not in tree]
    if missing:
        raise UserError(f"{source}: {missing[0]} is missing; {wanted}")
    return _validate(tree, source)


def of(params: Params | Mapping) -> Params:
    """`params` typed: a `Params` as is, a dict (loaded, or built in code, where a missing
    section takes the paper's values) validated. Readers of a section start here."""
    return params if isinstance(params, Params) else _validate(params, "params")


def validate(params: Mapping, source: str = "params") -> dict:
    """`params` validated, as the nested dict `load` returns."""
    return as_dict(_validate(params, source))


def _validate(tree: Any, source: str) -> Params:
    try:
        return Params.model_validate(tree)
    except ValidationError as exc:
        raise UserError(f"{source}: {text.one_line(exc, tree, Params)}") from None
