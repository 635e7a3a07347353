"""Runs and recurring runs on a Kubeflow Pipelines host, through the KFP SDK.

`submit` uploads the compiled YAML spec (a new pipeline, or a new version of
the pipeline of that name) and creates a run; `schedule` does the same and
creates a recurring run from a cron expression, at most one run at a time and
no catch-up of missed times; `list_schedules` and `delete_schedule` manage them.
Kubeflow's cron has six fields, seconds first (robfig/cron), so a five-field
crontab line is refused with the form to write instead.
"""

from __future__ import annotations

import dataclasses
import datetime
import re

from pipeline.config import PipelineConfig

# (name, lowest, highest, names allowed in place of numbers)
_MONTHS = ("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC").split()
_DAYS = ("SUN MON TUE WED THU FRI SAT").split()
CRON_FIELDS = (
    ("seconds", 0, 59, ()),
    ("minutes", 0, 59, ()),
    ("hours", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 6, _DAYS),
)
_PART = re.compile(r"^(?P<range>\*|\?|[A-Za-z0-9]+(-[A-Za-z0-9]+)?)(/(?P<step>\d+))?$")


class ScheduleError(ValueError):
    """A cron expression or schedule request that cannot work."""


def _value(text: str, field: tuple, expression: str) -> int:
    name, lowest, highest, names = field
    upper = text.upper()
    if upper in names:
        return names.index(upper) + (1 if name == "month" else 0)
    if not text.isdigit():
        raise ScheduleError(
            f"cron {expression!r}: {name} field: {text!r} is not a number"
            + (f" or one of {', '.join(names)}" if names else "")
        )
    number = int(text)
    if not lowest <= number <= highest:
        raise ScheduleError(
            f"cron {expression!r}: {name} field: {number} is outside {lowest}-{highest}"
        )
    return number


def validate_cron(expression: str) -> str:
    """Returns the expression when it is a valid six-field Kubeflow cron.

    Raises:
      ScheduleError: naming the field that is wrong.
    """
    fields = expression.split()
    if len(fields) != len(CRON_FIELDS):
        hint = ""
        if len(fields) == 5:
            hint = (
                f"; this looks like a five-field crontab line: Kubeflow puts "
                f"seconds first, so write '0 {expression.strip()}'"
            )
        raise ScheduleError(
            f"cron {expression!r}: {len(fields)} fields, expected 6 (seconds "
            f"minutes hours day-of-month month day-of-week){hint}"
        )
    for text, field in zip(fields, CRON_FIELDS, strict=True):
        name = field[0]
        for part in text.split(","):
            match = _PART.match(part)
            if not match:
                raise ScheduleError(
                    f"cron {expression!r}: {name} field: {part!r} is not a value, "
                    "a range a-b, * or a step like */5"
                )
            if match["step"] is not None and int(match["step"]) == 0:
                raise ScheduleError(
                    f"cron {expression!r}: {name} field: a step of 0 never fires"
                )
            bounds = match["range"]
            if bounds == "?" and name not in ("day of month", "day of week"):
                raise ScheduleError(
                    f"cron {expression!r}: {name} field: ? is only for the day "
                    "of month or the day of week"
                )
            if bounds in ("*", "?"):
                continue
            low, _, high = bounds.partition("-")
            first = _value(low, field, expression)
            if high and _value(high, field, expression) < first:
                raise ScheduleError(
                    f"cron {expression!r}: {name} field: range {bounds} runs backwards"
                )
    return expression


@dataclasses.dataclass(frozen=True)
class Uploaded:
    """The pipeline and version a run or recurring run is made from."""

    pipeline_id: str
    version_id: str


def api_errors() -> tuple[type[BaseException], ...]:
    """What the KFP client raises when the host cannot be reached or refuses."""
    import urllib3
    from kfp_server_api.exceptions import ApiException

    return (urllib3.exceptions.HTTPError, ApiException, ConnectionError)


def short_reason(error: BaseException) -> str:
    """One line on why a call to the KFP API failed, without client internals."""
    status = getattr(error, "status", None)
    if status is not None:
        return f"HTTP {status} {getattr(error, 'reason', '') or ''}".strip()
    reason = str(getattr(error, "reason", None) or error)
    # urllib3 prefixes the connection object: "<...Connection object at 0x..>: "
    return re.sub(r"^<[^>]*>:\s*", "", reason).splitlines()[0]


def make_client(config: PipelineConfig):
    """A kfp.Client for the configured host."""
    import kfp  # Imported here: only the cluster commands need it.

    if not config.kubeflow.host:
        raise ScheduleError(
            "kubeflow.host: required to reach Kubeflow Pipelines, e.g. "
            "http://ml-pipeline-ui.kubeflow or the URL of a port-forward"
        )
    return kfp.Client(
        host=config.kubeflow.host, namespace=config.kubeflow.namespace or "kubeflow"
    )


def upload(client, config: PipelineConfig, spec_path: str) -> Uploaded:
    """Uploads the spec as the pipeline named by pipeline_name, or a new version."""
    name = config.pipeline_name
    pipeline_id = client.get_pipeline_id(name)
    if pipeline_id is None:
        pipeline_id = client.upload_pipeline(spec_path, pipeline_name=name).pipeline_id
        versions = client.list_pipeline_versions(
            pipeline_id, page_size=1, sort_by="created_at desc"
        ).pipeline_versions
        return Uploaded(pipeline_id, versions[0].pipeline_version_id)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    version = client.upload_pipeline_version(
        spec_path, pipeline_version_name=f"{name}-{stamp}", pipeline_id=pipeline_id
    )
    return Uploaded(pipeline_id, version.pipeline_version_id)


def _experiment_id(client, config: PipelineConfig) -> str:
    return client.create_experiment(
        config.kubeflow.experiment, namespace=config.kubeflow.namespace or None
    ).experiment_id


def submit(
    client, config: PipelineConfig, spec_path: str, params: dict, run_name: str = ""
):
    """Uploads the spec and creates one run; returns the run."""
    uploaded = upload(client, config, spec_path)
    return client.run_pipeline(
        experiment_id=_experiment_id(client, config),
        job_name=run_name or config.pipeline_name,
        params=params,
        pipeline_id=uploaded.pipeline_id,
        version_id=uploaded.version_id,
    )


def schedule(
    client,
    config: PipelineConfig,
    spec_path: str,
    cron: str,
    params: dict,
    name: str = "",
):
    """Uploads the spec and creates a recurring run: one at a time, no catch-up."""
    validate_cron(cron)
    uploaded = upload(client, config, spec_path)
    return client.create_recurring_run(
        experiment_id=_experiment_id(client, config),
        job_name=name or f"{config.pipeline_name}-retrain",
        cron_expression=cron,
        max_concurrency=1,
        no_catchup=True,
        params=params,
        pipeline_id=uploaded.pipeline_id,
        version_id=uploaded.version_id,
        enabled=True,
    )


def list_schedules(client, config: PipelineConfig) -> list:
    """The recurring runs of the configured experiment."""
    found = []
    token = ""
    experiment_id = _experiment_id(client, config)
    while True:
        page = client.list_recurring_runs(
            page_token=token, page_size=100, experiment_id=experiment_id
        )
        found.extend(page.recurring_runs or [])
        token = page.next_page_token
        if not token:
            return found


def delete_schedule(client, recurring_run_id: str) -> None:
    client.delete_recurring_run(recurring_run_id)


def describe(recurring_run) -> str:
    """One line for a recurring run: id, name, cron, mode."""
    trigger = recurring_run.trigger
    cron = trigger.cron_schedule.cron if trigger and trigger.cron_schedule else "-"
    return (
        f"{recurring_run.recurring_run_id}\t{recurring_run.display_name}\t"
        f"cron {cron}\t{recurring_run.mode}"
    )
