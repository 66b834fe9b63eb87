"""Bank holidays from the shipped table: the very answers of the installed `holidays` package, without its import."""

import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from releaser import bank_holidays, bank_holidays_table
from releaser.bank_holidays import TABLE_YEARS, holidays_of, installed_version, package_holidays, table_source
from releaser.calendar import _closure_name, is_working_day

PROJECT = Path(__file__).resolve().parents[2]
REWRITE = "python -m releaser.bank_holidays > releaser/bank_holidays_table.py"


@pytest.fixture(autouse=True)
def fresh_cache():
    """Each test builds its own years: the cache must not carry one test's answers into the next."""
    holidays_of.cache_clear()
    bank_holidays._version_once.cache_clear()
    yield
    holidays_of.cache_clear()
    bank_holidays._version_once.cache_clear()


# When a newer `holidays` is installed the table stands aside (releaser asks the package: slower, never wrong),
# so comparing the table with that package says nothing about releaser's answers; it says to write the table again.
written_from_this_version = pytest.mark.skipif(
    installed_version() != bank_holidays_table.VERSION,
    reason=f"the table was written from holidays {bank_holidays_table.VERSION} and {installed_version()} is installed: "
           f"releaser asks the package itself until the table is written again ({REWRITE})")


@written_from_this_version
def test_the_table_is_what_the_installed_package_writes():
    """The shipped table is the installed package's: same version, and the same text the generator writes today."""
    version = installed_version()
    assert bank_holidays_table.VERSION == version, f"holidays {version} is installed; write the table again: {REWRITE}"
    written = (PROJECT / "releaser" / "bank_holidays_table.py").read_text()
    assert written == table_source(version, *TABLE_YEARS), f"the table is stale; write it again: {REWRITE}"


@written_from_this_version
def test_every_year_of_the_table_gives_the_packages_answer():
    """Every holiday, with its name, of every year the table holds, is the package's, and no other day is one."""
    first, last = TABLE_YEARS
    for year in range(first, last + 1):
        from_table = bank_holidays._from_table("GB", "ENG", year)
        assert from_table is not None, year
        assert from_table == package_holidays("GB", "ENG", year), year


def test_working_days_and_closure_names_match_the_package_day_by_day():
    """is_working_day and the closure names the calendar shows agree with the package on every day of 1990-2100."""
    day, last = date(TABLE_YEARS[0], 1, 1), date(TABLE_YEARS[1], 12, 31)
    package = {}
    while day <= last:
        if day.year not in package:
            package[day.year] = package_holidays("GB", "ENG", day.year)
        holidays = package[day.year]
        assert is_working_day(day) == (day.weekday() < 5 and day not in holidays), day
        if not is_working_day(day):
            assert _closure_name(day) == holidays.get(day, "weekend").replace(" (observed)", ", observed"), day
        day += timedelta(days=1)


def test_another_installed_version_is_asked_itself(monkeypatch):
    """With another version of the package installed the table stays silent: the package answers."""
    monkeypatch.setattr(bank_holidays, "installed_version", lambda: "0.0")
    assert bank_holidays._from_table("GB", "ENG", 2026) is None
    assert holidays_of("GB", "ENG", 2026) == package_holidays("GB", "ENG", 2026)


def test_years_outside_the_table_come_from_the_package():
    """A year before or after the table's range is the package's answer."""
    for year in (TABLE_YEARS[0] - 1, TABLE_YEARS[1] + 1, 1953):
        assert bank_holidays._from_table("GB", "ENG", year) is None
        assert holidays_of("GB", "ENG", year) == package_holidays("GB", "ENG", year)


def test_an_unknown_country_fails_as_the_package_fails():
    """The table holds one country; another, unknown one raises the package's own error, not an empty year."""
    with pytest.raises(NotImplementedError) as direct:
        package_holidays("XX", None, 2026)
    with pytest.raises(NotImplementedError) as through:
        holidays_of("XX", None, 2026)
    assert str(through.value) == str(direct.value)


def test_a_missing_package_is_not_hidden_by_the_table(monkeypatch):
    """Without the holidays package the table cannot say it is the package's: the import error reaches the caller."""
    monkeypatch.setattr(bank_holidays, "installed_version", lambda: None)
    monkeypatch.setitem(sys.modules, "holidays", None)  # what `import holidays` does when it is not installed
    with pytest.raises(ImportError):
        holidays_of("GB", "ENG", 2026)


def test_a_go_live_deadline_does_not_import_the_package():
    """The calendar answers from the table in a fresh process without importing `holidays` at all."""
    code = ("import sys; from datetime import date; import releaser.config; "
            "from releaser.calendar import is_working_day, upload_deadline_for; "
            "assert not is_working_day(date(2026, 12, 25)) and is_working_day(date(2026, 12, 29)); "
            "print('holidays' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False", done.stderr
