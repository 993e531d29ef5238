"""A JSON-lines landing source, declared once: its contract, and the bronze and silver tables built from it.

``JsonContract`` holds what differs between sources (fields, required fields, how silver types them, the
rules, which version of a key wins); ``bronze_spec`` and ``silver_spec`` make the two gated tables of any such
source. Orders and payments are both declared this way.

Bronze keeps every non-blank line: each field (contract and extra) as the raw text of its JSON value,
``_corrupt_record`` for a line that is not a JSON object, ``_invalid_utf8`` (base64) for one that is not UTF-8,
``_json_types`` for the fields whose value is an object, an array or a boolean (their text alone does not say:
``true`` and ``"true"`` are both ``true``). Repeated keys in one object: the last value wins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from medallion_assets import transforms
from medallion_assets.factory import ReadBackCheck, Run, TableSpec
from medallion_assets.ingest import LANDING, json_lines
from medallion_assets.partitions import SILVER_FRESHNESS
from medallion_assets.quality.checks import key_unique, line_accounting, row_accounting
from medallion_assets.quality.rules import PIPELINE_COLUMNS, Rule, RuleSet, present
from medallion_assets.transforms import WORKING_PREFIX
from resources.engine_features import runs_json_object_keys

AUDIT_COLUMNS: tuple[str, ...] = (
    "_corrupt_record", "_invalid_utf8", "_json_types", "_source_file", "_line_number", "_ingested_at",
)  # fmt: skip
SILVER_AUDIT: tuple[str, ...] = ("_source_file", "_line_number", "_ingested_at")
#: Characters no text field may hold (C0 controls but tab, line feed and carriage return; DEL).
CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"


@dataclass(frozen=True)
class JsonContract:
    """What a JSON-lines source promises, and how silver reads it."""

    source: str  # the landing folder: <landing>/<source>/date=YYYY-MM-DD/*.jsonl
    partition_column: str  # the folder's date, the tables' partition column
    key: str
    fields: tuple[str, ...]
    required: tuple[str, ...]
    #: silver's typed value of each field, from bronze's raw text (try-cast: a bad value becomes null)
    typed: Callable[[], Mapping[str, Column]]
    #: the source's own rules over bronze columns and the typed ``t_<field>`` values (see ``field_rules``)
    rules: Callable[[], Iterable[Rule]]
    #: among valid rows of one key and day, the winner: the latest by these typed columns, then file and line
    latest_by: tuple[str, ...]
    #: text fields that must hold no control characters
    text_fields: tuple[str, ...] = ()

    @property
    def bronze(self) -> str:
        return f"bronze/{self.source}"

    @property
    def silver(self) -> str:
        return f"silver/{self.source}"

    @property
    def quarantine(self) -> str:
        return f"quarantine/{self.source}"

    @property
    def bronze_columns(self) -> tuple[str, ...]:
        return (*self.fields, *AUDIT_COLUMNS, self.partition_column)


def parsed() -> Column:
    """The line was valid UTF-8 and a JSON object: its fields can be judged."""
    return F.col("_corrupt_record").isNull() & F.col("_invalid_utf8").isNull()


def on_parsed(rule: Rule) -> Rule:
    """``rule`` for parsed lines only: a line that did not parse fails ``utf8_valid`` or ``json_object`` alone."""
    return rule.only_when(parsed, columns=("_corrupt_record", "_invalid_utf8"))


def known(field: str, values: tuple[str, ...]) -> Rule:
    """``<field>_known``: the field's typed value (``t_<field>``, without the white space around it) is one of
    ``values``, on parsed lines where the field is present."""
    rule = Rule.isin(f"{WORKING_PREFIX}{field}", values, name=f"{field}_known",
                     description=f"{field} is one of {', '.join(values)}")  # fmt: skip
    return on_parsed(rule.when_present(field))


def is_text(field: str) -> Rule:
    """``<field>_text``: the field's JSON value is a string or a number (its text exactly as written), not an object,
    an array or a boolean (``_json_types``)."""
    return on_parsed(
        Rule.expr(
            f"{field}_text",
            lambda: ~F.coalesce(F.array_contains(F.map_keys(F.col("_json_types")), field), F.lit(False)),
            columns=("_json_types",),
            description=f"{field} is a JSON string or number, not an object, array or boolean",
        )
    )


def line_rules(contract: JsonContract) -> list[Rule]:
    """Rules every JSON-lines source shares: UTF-8, a JSON object per line, no control characters, text fields
    holding text."""
    return [
        Rule.expr(
            "utf8_valid", lambda: F.col("_invalid_utf8").isNull(), columns=("_invalid_utf8",),
            description="the line is UTF-8 (its bytes are kept in _invalid_utf8 when not)",
        ),
        Rule.expr(
            "json_object", lambda: F.col("_invalid_utf8").isNotNull() | F.col("_corrupt_record").isNull(),
            columns=("_invalid_utf8", "_corrupt_record"), description="the line is a JSON object",
        ),
        on_parsed(
            Rule.expr(
                "no_control_characters",
                lambda: ~F.coalesce(
                    F.concat_ws("", *(F.col(f) for f in contract.text_fields)).rlike(CONTROL), F.lit(False)
                ),
                columns=contract.text_fields, description="text fields hold no control characters",
            )
        ),
        *(is_text(f) for f in contract.text_fields),
    ]  # fmt: skip


def bronze_rules(contract: JsonContract) -> RuleSet:
    """Bronze's gate: the share of lines that are UTF-8 JSON objects carrying every required field."""
    return RuleSet(
        contract.bronze,
        columns=contract.bronze_columns,
        partition_column=contract.partition_column,
        rules=[
            *line_rules(contract)[:2],
            on_parsed(
                Rule.expr(
                    "required_fields_present",
                    partial(_all_present, contract),
                    columns=contract.required,
                    description=f"every required field is present: {', '.join(contract.required)}",
                )
            ),
        ],
    )


def _all_present(contract: JsonContract) -> Column:
    condition = F.lit(True)
    for name in contract.required:
        condition = condition & present(name)
    return condition


def silver_rules(contract: JsonContract) -> RuleSet:
    """Silver's rules: the shared line rules, each required field present, then the source's own."""
    typed = tuple(f"{WORKING_PREFIX}{f}" for f in contract.fields)
    return RuleSet(
        contract.silver,
        columns=(*contract.bronze_columns, *typed),
        partition_column=contract.partition_column,
        rules=[
            *line_rules(contract),
            *(on_parsed(Rule.present(f, name=f"{f}_present")) for f in contract.required),
            *contract.rules(),
        ],
    )


# -- bronze ---------------------------------------------------------------------------------------------------
def bronze_frame(
    contract: JsonContract, parsed: DataFrame, *, ingested_at: datetime
) -> tuple[DataFrame, dict[str, str]]:
    """Bronze rows of parsed lines (``transforms.parse_lines``) and the columns given to fields outside the
    contract (one pass over the lines finds their keys)."""
    reserved = (*contract.bronze_columns, *PIPELINE_COLUMNS)
    extras = transforms.extra_columns(contract.fields, reserved, transforms.json_keys(parsed))
    bronze = transforms.bronze_columns(
        parsed, day_column=contract.partition_column, fields=contract.fields, extras=extras, ingested_at=ingested_at
    )
    return bronze, extras


def bronze_spec(contract: JsonContract) -> TableSpec:
    """``bronze/<source>``: every non-blank line of every ready file of the day."""

    def build(run: Run, upstream: Mapping[str, DataFrame]) -> DataFrame:
        lines = upstream[LANDING]
        keys_from_map = not runs_json_object_keys(run.spark)
        parsed = run.stage(
            transforms.parse_lines(lines, contract.fields, keys_from_map=keys_from_map), f"{contract.source}_parsed"
        )
        bronze, extras = bronze_frame(contract, parsed, ingested_at=run.started_at)
        run.report["extra_fields"] = sorted(extras.values())
        return bronze

    return TableSpec(
        table=contract.bronze,
        build=build,
        rules=bronze_rules(contract),
        partition_column=contract.partition_column,
        keeps_failing_rows=True,
        read=json_lines(contract.source, contract.partition_column),
        guard_volume=True,
        stage=False,
        checks=(line_accounting(contract.bronze, contract.partition_column),),
        sample_columns=("value", "_corrupt_record", "_invalid_utf8"),
        description=f"Every non-blank line of every ready {contract.source} file of the day: each field as the raw "
        "text of its JSON value, _corrupt_record (not a JSON object), _invalid_utf8 (not UTF-8, base64), "
        "_json_types (fields that are JSON objects, arrays or booleans), _source_file, _line_number, _ingested_at.",
    )


# -- silver ---------------------------------------------------------------------------------------------------
def silver_spec(contract: JsonContract, *, checks: tuple[ReadBackCheck, ...] = (), description: str = "") -> TableSpec:
    """``silver/<source>``: typed, validated, the latest version per key and day; failures to quarantine."""

    def build(run: Run, upstream: Mapping[str, DataFrame]) -> DataFrame:
        return transforms.typed_rows(upstream[contract.bronze], contract.typed())

    return TableSpec(
        table=contract.silver,
        build=build,
        rules=silver_rules(contract),
        upstream=(contract.bronze,),
        partition_column=contract.partition_column,
        quarantine=contract.quarantine,
        latest_by=(f"{WORKING_PREFIX}{contract.key}", (*contract.latest_by, "_source_file", "_line_number")),
        published=partial(transforms.silver_columns, fields=contract.fields, day_column=contract.partition_column),
        checks=(
            row_accounting(contract.bronze, contract.silver, contract.quarantine, contract.partition_column),
            key_unique(contract.silver, contract.key, contract.partition_column),
            *checks,
        ),
        freshness=SILVER_FRESHNESS,
        sample_columns=(contract.key, *contract.required[:3]),
        description=description
        or f"Typed {contract.source} (try-cast), contract rules enforced, the latest version per {contract.key} "
        f"and day. Failing rows go to {contract.quarantine} with every failed rule.",
    )
