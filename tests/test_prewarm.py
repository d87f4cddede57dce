"""Scheduled pre-warm: the cron schedules as KEDA's cron scaler reads them, the windows they open, and the ScaledObject
triggers that carry them.

The parser cases are robfig/cron v3.0.1's own (parser_test.go TestRange, spec_test.go TestActivation and TestNext,
the five-field ones, TZ= moved to the zone), with the parser options of kedacore/keda v2.20.2
pkg/scalers/cron_scaler.go (`NewParser(Minute | Hour | Dom | Month | Dow)`: no descriptors, no seconds). The activity
rule is that file's GetMetricsAndActivity."""

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from test_workload_support import DEV_MODELS, PROD_MODELS, as_object, of_kind, run_workload
from upstream import load_upstream, needs_upstream, validate_cr

from components.model_service import prewarm_triggers
from stacks.config import cron

UTC = timezone.utc
NY = ZoneInfo("America/New_York")


# -- the parser: robfig/cron v3.0.1 parser_test.go TestRange -------------------------------------------------------
@pytest.mark.parametrize("expr, lo, hi, values, star, error", [
    ("5", 0, 7, {5}, False, None),
    ("0", 0, 7, {0}, False, None),
    ("7", 0, 7, {7}, False, None),
    ("5-5", 0, 7, {5}, False, None),
    ("5-6", 0, 7, {5, 6}, False, None),
    ("5-7", 0, 7, {5, 6, 7}, False, None),
    ("5-6/2", 0, 7, {5}, False, None),
    ("5-7/2", 0, 7, {5, 7}, False, None),
    ("5-7/1", 0, 7, {5, 6, 7}, False, None),
    ("*", 1, 3, {1, 2, 3}, True, None),
    ("*/2", 1, 3, {1, 3}, False, None),
    ("5--5", 0, 0, None, None, "too many '-'"),
    ("jan-x", 0, 0, None, None, "not a number"),
    ("2-x", 1, 5, None, None, "not a number"),
    ("*/-12", 0, 0, None, None, "negative"),
    ("*//2", 0, 0, None, None, "too many '/'"),
    ("1", 3, 5, None, None, "below"),
    ("6", 3, 5, None, None, "above"),
    ("5-3", 3, 5, None, None, "starts after it ends"),
    ("*/0", 0, 0, None, None, "is 0"),
])
def test_ranges_as_robfig_reads_them(expr, lo, hi, values, star, error):
    b = cron.Bounds("x", lo, hi)
    if error:
        with pytest.raises(cron.CronError, match=error):
            cron.parse_range(expr, b, expr)
    else:
        assert cron.parse_range(expr, b, expr) == (values, star)


def test_fields_lists_names_and_quirks():
    # TestField: "1,5-7/2,3" is 1, 3, 5, 7
    assert cron.parse("1,5-7/2,3 * * * *").minutes == {1, 3, 5, 7}
    # doc.go: names are case-insensitive; "?" may stand for * in day-of-month / day-of-week
    assert cron.parse("0 0 * JAN-mar Sun,MON").months == {1, 2, 3}
    assert cron.parse("0 0 * * sun,Mon").weekdays == {0, 1}
    assert cron.parse("0 0 ? * 1").dom_star and not cron.parse("0 0 ? * 1").dow_star
    # doc.go: "N/step" means N-max/step and does not wrap
    assert cron.parse("50/5 * * * *").minutes == {50, 55}
    # parser.go reads nothing after `*-`, drops empty list items (strings.FieldsFunc), and takes Atoi's `+`
    assert cron.parse("*-5 * * * *").minutes == set(range(60))
    assert cron.parse("1,,2 * * * *").minutes == {1, 2}
    assert cron.parse("+5 * * * *").minutes == {5}
    # strings.Fields: runs of Go whitespace separate fields
    assert cron.parse("0\t8  * *\u00a0*").hours == {8}
    for bad, why in [("5_0 * * * *", "not a number"), ("\u0665 * * * *", "not a number"),
                     ("99999999999999999999 * * * *", "not a number"), ("0 0 * * mon-jan", "not a number"),
                     ("0 0 1-jan * *", "not a number")]:
        with pytest.raises(cron.CronError, match=why):
            cron.parse(bad)


@pytest.mark.parametrize("spec, message", [
    ("", "is empty; allowed: five fields"),
    ("* * * *", "has 4 fields; allowed: exactly five fields"),
    ("0 0 8 * * *", "has 6 fields (KEDA's cron scaler has no seconds field)"),
    ("@hourly", "is a descriptor, which KEDA's cron scaler does not accept; allowed: five fields "
                "`minute hour day-of-month month day-of-week`, e.g. 0 * * * * for @hourly"),
    ("@every 1h30m", "is a descriptor, which KEDA's cron scaler does not accept"),
    ("CRON_TZ=Asia/Tokyo 30 04 * * *", "sets its own time zone; allowed: the five fields only"),
    ("TZ=UTC 5 * * * *", "sets its own time zone"),
    ("0 0 * * 7", "day-of-week 7 is above 6; allowed: day-of-week 0-6 or SUN-SAT"),
])
def test_what_kedas_parser_refuses(spec, message):
    with pytest.raises(cron.CronError) as e:
        cron.parse(spec)
    assert message in str(e.value)


def _go_time(text: str) -> datetime:
    """spec_test.go getTime: "Mon Jul 9 15:00 2012" (local = UTC here) or an RFC 3339-ish time with an offset."""
    if text[0].isdigit():
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")
    return datetime.strptime(text, "%a %b %d %H:%M %Y").replace(tzinfo=UTC)


# spec_test.go TestActivation, five-field cases: Next(t - 1 s) == t?
@pytest.mark.parametrize("when, spec, fires", [
    ("Mon Jul 9 15:00 2012", "0/15 * * * *", True),
    ("Mon Jul 9 15:45 2012", "0/15 * * * *", True),
    ("Mon Jul 9 15:40 2012", "0/15 * * * *", False),
    ("Mon Jul 9 15:05 2012", "5/15 * * * *", True),
    ("Mon Jul 9 15:20 2012", "5/15 * * * *", True),
    ("Mon Jul 9 15:50 2012", "5/15 * * * *", True),
    ("Sun Jul 15 15:00 2012", "0/15 * * Jul *", True),
    ("Sun Jul 15 15:00 2012", "0/15 * * Jun *", False),
    ("Sun Jul 15 08:30 2012", "30 08 ? Jul Sun", True),
    ("Sun Jul 15 08:30 2012", "30 08 15 Jul ?", True),
    ("Mon Jul 16 08:30 2012", "30 08 ? Jul Sun", False),
    ("Mon Jul 16 08:30 2012", "30 08 15 Jul ?", False),
    # the descriptors, written as the five fields they stand for (KEDA refuses the @ form)
    ("Mon Jul 9 15:00 2012", cron.DESCRIPTORS["@hourly"], True),
    ("Mon Jul 9 15:04 2012", cron.DESCRIPTORS["@hourly"], False),
    ("Mon Jul 9 15:00 2012", cron.DESCRIPTORS["@daily"], False),
    ("Mon Jul 9 00:00 2012", cron.DESCRIPTORS["@daily"], True),
    ("Mon Jul 9 00:00 2012", cron.DESCRIPTORS["@weekly"], False),
    ("Sun Jul 8 00:00 2012", cron.DESCRIPTORS["@weekly"], True),
    ("Sun Jul 8 01:00 2012", cron.DESCRIPTORS["@weekly"], False),
    ("Sun Jul 8 00:00 2012", cron.DESCRIPTORS["@monthly"], False),
    ("Sun Jul 1 00:00 2012", cron.DESCRIPTORS["@monthly"], True),
    # both day fields restricted: either matches; one starred: both must
    ("Sun Jul 15 00:00 2012", "* * 1,15 * Sun", True),
    ("Fri Jun 15 00:00 2012", "* * 1,15 * Sun", True),
    ("Wed Aug 1 00:00 2012", "* * 1,15 * Sun", True),
    ("Sun Jul 15 00:00 2012", "* * */10 * Sun", True),
    ("Sun Jul 15 00:00 2012", "* * * * Mon", False),
    ("Mon Jul 9 00:00 2012", "* * 1,15 * *", False),
    ("Sun Jul 15 00:00 2012", "* * 1,15 * *", True),
    ("Sun Jul 15 00:00 2012", "* * */2 * Sun", True),
])
def test_activation_as_robfig_tests_it(when, spec, fires):
    t = _go_time(when)
    assert (cron.next_fire(cron.parse(spec), ZoneInfo("UTC"), t - timedelta(seconds=1)) == t) is fires


# spec_test.go TestNext, the cases whose seconds field is 0 (dropped), TZ= as the zone
@pytest.mark.parametrize("after, spec, zone, expected", [
    ("Mon Jul 9 14:45 2012", "0/15 * * * *", "UTC", "Mon Jul 9 15:00 2012"),
    ("Mon Jul 9 14:59 2012", "0/15 * * * *", "UTC", "Mon Jul 9 15:00 2012"),
    ("Mon Jul 9 15:45 2012", "20-35/15 * * * *", "UTC", "Mon Jul 9 16:20 2012"),
    ("Mon Jul 9 23:46 2012", "*/15 * * * *", "UTC", "Tue Jul 10 00:00 2012"),
    ("Mon Jul 9 23:45 2012", "20-35/15 * * * *", "UTC", "Tue Jul 10 00:20 2012"),
    ("Mon Jul 9 23:35 2012", "0 0 9 Apr-Oct ?", "UTC", "Thu Aug 9 00:00 2012"),
    ("Mon Jul 9 23:35 2012", "0 0 */5 Apr,Aug,Oct Mon", "UTC", "Tue Aug 1 00:00 2012"),
    ("Mon Jul 9 23:35 2012", "0 0 */5 Oct Mon", "UTC", "Mon Oct 1 00:00 2012"),
    ("Mon Jul 9 23:35 2012", "0 0 * Feb Mon", "UTC", "Mon Feb 4 00:00 2013"),
    ("Mon Jul 9 23:35 2012", "0 0 * Feb Mon/2", "UTC", "Fri Feb 1 00:00 2013"),
    ("Mon Jul 9 23:35 2012", "0 0 29 Feb ?", "UTC", "Mon Feb 29 00:00 2016"),
    # daylight saving time: 2am EST -> 3am EDT skips 02:xx; 2am EDT -> 1am EST repeats 01:xx
    ("2012-03-11T00:00:00-0500", "30 2 11 Mar ?", "America/New_York", "2013-03-11T02:30:00-0400"),
    ("2012-03-11T00:00:00-0500", "0 * * * ?", "America/New_York", "2012-03-11T01:00:00-0500"),
    ("2012-03-11T01:00:00-0500", "0 * * * ?", "America/New_York", "2012-03-11T03:00:00-0400"),
    ("2012-03-11T03:00:00-0400", "0 * * * ?", "America/New_York", "2012-03-11T04:00:00-0400"),
    ("2012-03-11T00:00:00-0500", "0 1 * * ?", "America/New_York", "2012-03-11T01:00:00-0500"),
    ("2012-03-11T01:00:00-0500", "0 1 * * ?", "America/New_York", "2012-03-12T01:00:00-0400"),
    ("2012-03-11T00:00:00-0500", "0 2 * * ?", "America/New_York", "2012-03-12T02:00:00-0400"),
    ("2012-11-04T00:00:00-0400", "30 2 04 Nov ?", "America/New_York", "2012-11-04T02:30:00-0500"),
    ("2012-11-04T01:45:00-0400", "30 1 04 Nov ?", "America/New_York", "2012-11-04T01:30:00-0500"),
    ("2012-11-04T00:00:00-0400", "0 * * * ?", "America/New_York", "2012-11-04T01:00:00-0400"),
    ("2012-11-04T01:00:00-0400", "0 * * * ?", "America/New_York", "2012-11-04T01:00:00-0500"),
    ("2012-11-04T01:00:00-0500", "0 * * * ?", "America/New_York", "2012-11-04T02:00:00-0500"),
    ("2012-11-04T00:00:00-0400", "0 1 * * ?", "America/New_York", "2012-11-04T01:00:00-0400"),
    ("2012-11-04T01:00:00-0400", "0 1 * * ?", "America/New_York", "2012-11-04T01:00:00-0500"),
    ("2012-11-04T01:00:00-0500", "0 1 * * ?", "America/New_York", "2012-11-05T01:00:00-0500"),
    ("2012-11-04T00:00:00-0400", "0 2 * * ?", "America/New_York", "2012-11-04T02:00:00-0500"),
    ("2012-11-04T02:00:00-0500", "0 2 * * ?", "America/New_York", "2012-11-05T02:00:00-0500"),
    ("2012-11-04T00:00:00-0400", "0 3 * * ?", "America/New_York", "2012-11-04T03:00:00-0500"),
    ("2012-11-04T03:00:00-0500", "0 3 * * ?", "America/New_York", "2012-11-05T03:00:00-0500"),
    ("2012-11-04T00:00:00-0400", "0 3 3 * ?", "America/New_York", "2012-12-03T03:00:00-0500"),
    ("Mon Jul 9 23:35 2012", "0 0 30 Feb ?", "UTC", None),
    ("Mon Jul 9 23:35 2012", "0 0 31 Apr ?", "UTC", None),
])
def test_next_as_robfig_tests_it(after, spec, zone, expected):
    s = cron.parse(spec)
    got = cron.next_fire(s, ZoneInfo(zone), _go_time(after))
    assert got == (_go_time(expected) if expected else None)
    assert s.fires() is (expected is not None)


# -- the scaler's activity rule: cron_scaler.go GetMetricsAndActivity ---------------------------------------------
def test_the_activity_rule_line_for_line():
    now = datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC)
    soon, later = now + timedelta(hours=1), now + timedelta(hours=2)
    assert cron.scaler_active(now, soon, later) is False   # next start comes first: before the window
    assert cron.scaler_active(now, later, soon) is True    # next end comes first: inside the window
    assert cron.scaler_active(now, soon, soon) is True     # same instant: not "start before end"
    assert cron.scaler_active(now, None, soon) is True     # a start that never fires is Go's zero time
    assert cron.scaler_active(now, soon, None) is False    # an end that never fires: never active


def _active(start, end, zone, begin, minutes=7 * 24 * 60):
    return cron.active_minutes(cron.parse(start), cron.parse(end), ZoneInfo(zone), begin, minutes)


MON = datetime(2026, 6, 1, tzinfo=UTC)  # a Monday, 00:00 UTC


def test_windows_cross_midnight_and_weekends():
    assert sum(_active("50 7 * * 1-5", "0 19 * * 1-5", "UTC", MON)) == 5 * (11 * 60 + 10)
    assert sum(_active("0 20 * * *", "0 6 * * *", "UTC", MON)) == 7 * 10 * 60
    assert sum(_active("0 18 * * 5", "0 8 * * 1", "UTC", MON)) == 62 * 60
    # Tokyo office hours seen from a UTC week: 09:00-18:00 JST is 00:00-09:00 UTC
    mins = _active("0 9 * * 1-5", "0 18 * * 1-5", "Asia/Tokyo", MON)
    assert sum(mins) == 45 * 60 and mins[0] and mins[9 * 60 - 1] and not mins[9 * 60]


def test_a_clock_change_inside_a_window_counts_real_time():
    # Europe/Berlin leaves summer time on Sun 2026-10-25 03:00 -> 02:00: that night's 20:00-06:00 lasts 11 hours
    night = lambda d: sum(_active("0 20 * * *", "0 6 * * *", "Europe/Berlin",  # noqa: E731
                                  datetime(2026, 10, d, 12, tzinfo=UTC), 24 * 60))
    assert (night(17), night(24), night(25)) == (10 * 60, 11 * 60, 10 * 60)


def test_what_the_scaler_does_with_windows_that_do_not_alternate():
    """The config refuses these; the simulation shows the refusal messages tell the truth."""
    # ends every day, starts on weekdays: Friday's window stays open until Sunday 19:00
    start, end = "0 8 * * 1-5", "0 19 * * *"
    (line,) = cron.order_problems(cron.parse(start), cron.parse(end))
    assert line[0] == "end" and "keeps the window open until Sun 2026-01-04 19:00" in line[1]
    mins = _active(start, end, "UTC", MON)
    fri, sun = 4 * 24 * 60, 6 * 24 * 60
    assert not mins[fri + 7 * 60 + 59] and all(mins[fri + 8 * 60:sun + 19 * 60]) and not mins[sun + 19 * 60]
    # two starts before an end: the window opens at the second one only
    start, end = "0 8,9 * * *", "0 19 * * *"
    (line,) = cron.order_problems(cron.parse(start), cron.parse(end))
    assert line[0] == "start" and "opens the window only at Thu 2026-01-01 09:00" in line[1]
    mins = _active(start, end, "UTC", MON)
    assert not mins[8 * 60 + 30] and mins[9 * 60 + 30]


def test_what_the_scaler_does_at_a_skipped_start():
    """A start in the hour a spring-forward skips: the window runs from the previous end to the next (a day)."""
    start, end = "30 2 * * *", "0 8 * * *"
    (line,) = cron.dst_problems(cron.parse(start), cron.parse(end), "America/New_York")
    assert line[0] == "start" and "2026-03-08 02:30" in line[1] and "skips" in line[1]
    begin = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)  # Saturday 07:00 EST
    mins = cron.active_minutes(cron.parse(start), cron.parse(end), NY, begin, 24 * 60)
    assert all(mins)  # Sat 08:00 EST ... Sun 08:00 EDT: no start fired, so no minute is "before a start"


def test_weekly_shortcut_agrees_with_the_full_scan(monkeypatch):
    pairs = [("0 8 * * 1-5", "0 19 * * *"), ("0 20 * * 5", "0 6 * * 1"), ("0 8 * * 1-5", "0 19 * * 1-5"),
             ("0 9 * * *", "0 9 * * 6"), ("0 20 * * 0-4", "0 6 * * 1-5")]
    quick = [cron.order_problems(cron.parse(s), cron.parse(e)) for s, e in pairs]
    monkeypatch.setattr(cron, "_weekly", lambda s: False)
    assert [cron.order_problems(cron.parse(s), cron.parse(e)) for s, e in pairs] == quick


# -- the ScaledObject ---------------------------------------------------------------------------------------------
def _cron_schema() -> dict:
    (scaler,) = [s for s in load_upstream("keda/scalers-schema.yaml")["scalers"] if s["type"] == "cron"]
    return {p["name"]: p for p in scaler["parameters"]}


def _scaled_objects(mocks) -> dict:
    return {o["metadata"]["name"]: o for o in (as_object(r) for r in of_kind(mocks, "ScaledObject"))}


@needs_upstream
@pytest.mark.parametrize("stack, models", [("dev", DEV_MODELS), ("prod", PROD_MODELS)])
def test_cron_triggers_as_keda_reads_them(mocks, stack, models):
    run_workload(stack)
    schema = _cron_schema()
    for m in models:
        so = _scaled_objects(mocks)[m["servedName"]]
        assert validate_cr(so) == []
        triggers = so["spec"]["triggers"]
        crons = [t for t in triggers if t["type"] == "cron"]
        assert [t["metadata"] for t in crons] == [
            {"start": w["start"], "end": w["end"], "timezone": w["timezone"], "desiredReplicas": str(w["replicas"])}
            for w in m.get("prewarm", [])]
        for t in crons:
            # every parameter the scalers schema lists for cron, and nothing else (all are required by the
            # scaler's typed config: none is marked optional)
            assert set(t["metadata"]) == set(schema)
            assert all(isinstance(v, str) for v in t["metadata"].values())
            # AverageValue with a target of 1: the HPA proposes desiredReplicas for the trigger
            assert t["metricType"] == "AverageValue" and "useCachedMetrics" not in t
        # KEDA's webhook (apis/keda/v1alpha1 ValidateTriggers): trigger names unique
        names = [t["name"] for t in triggers if t.get("name")]
        assert len(names) == len(set(names))
        # inside a window at least `replicas`, outside: to zero as before
        assert so["spec"]["minReplicaCount"] == m.get("minReplicas", 0) == 0
        assert all(int(t["metadata"]["desiredReplicas"]) <= so["spec"]["maxReplicaCount"] for t in crons)


def test_only_configured_windows_buy_gpus_without_a_request(mocks):
    """Every trigger that can make a model active is a request signal, except one cron trigger per configured
    window; nothing else in the stack schedules replicas (no CronJob, no ScaledJob)."""
    outputs, _, cfg = run_workload("prod")
    objects = _scaled_objects(mocks)
    for m in cfg.models:
        triggers = objects[m.served_name]["spec"]["triggers"]
        kinds = [t["type"] for t in triggers]
        assert kinds == ["external-push", "prometheus"] + ["cron"] * len(m.prewarm)
        prom = triggers[1]["metadata"]
        assert prom["activationThreshold"] == prom["threshold"]  # the queue never wakes a model by itself
    assert not of_kind(mocks, "CronJob") and not of_kind(mocks, "ScaledJob")
    assert any(m.prewarm for m in cfg.models) and any(not m.prewarm for m in cfg.models)


def test_component_refuses_a_window_above_max_replicas():
    w = {"start": "0 8 * * *", "end": "0 9 * * *", "timezone": "UTC", "replicas": 3}
    assert prewarm_triggers([w], 3)[0]["metadata"]["desiredReplicas"] == "3"
    with pytest.raises(ValueError, match="outside 1..max_replicas"):
        prewarm_triggers([w], 2)


def test_the_commented_example_in_the_prod_stack_file_is_valid_and_off():
    import re

    import yaml

    from stack_helpers import ROOT
    from stacks.config import raw_from_values, validate

    text = (ROOT / "Pulumi.prod.yaml").read_text()
    prod = yaml.safe_load(text)["config"]
    assert "prewarm" not in prod["gpu-burst:models"][0]  # not switched on
    on = re.sub(r"^(\s*)# (prewarm:|  - \{start)", r"\1\2", text, flags=re.M)
    assert on != text
    raw, lines = raw_from_values({**yaml.safe_load(on)["config"], "gpu-burst:hfToken": {"secure": "v1:xyz"}})
    (w,) = validate(raw).models[0].prewarm
    assert (w.start, w.end, w.timezone, w.replicas) == ("50 7 * * 1-5", "0 19 * * 1-5", "Europe/Berlin", 2)
