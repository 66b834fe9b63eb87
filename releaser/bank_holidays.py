"""The bank holidays of one year, exactly as the `holidays` package gives them, without importing it when known.

Importing `holidays` costs about 85 ms and its first lookup another 80-110 ms (it loads every country), paid by
every command that asks whether a day is a working day: a go-live's deadline and lock checks among them.
`bank_holidays_table.py` holds the England & Wales days of a range of years as one version of the package
computed them, and answers only while that very version is installed, so an answer from the table is the
package's own. Anything else (another version, a year outside the table, another country or subdivision)
asks the package, and its errors (not installed, unknown country) reach the caller unchanged.

After upgrading `holidays`, write the table again (tests/core/test_bank_holidays.py says so when it is stale):

    python -m releaser.bank_holidays > releaser/bank_holidays_table.py
"""

from __future__ import annotations

import functools
import string
import sys
from datetime import date

CODES = string.ascii_letters  # one letter per holiday name in the table
TABLE_YEARS = (1990, 2100)  # the years the table holds, both included


@functools.lru_cache(maxsize=None)
def holidays_of(country: str, subdivision: str | None, year: int) -> dict[date, str]:
    """The public holidays of `year` by day, with their names: the table's when it is the package's, else the package's.

    Cached per (country, subdivision, year): a command builds each year it asks about once, when first asked.
    """
    known = _from_table(country, subdivision, year)
    if known is not None:
        return known
    return package_holidays(country, subdivision, year)


def package_holidays(country: str, subdivision: str | None, year: int) -> dict[date, str]:
    """The holidays of `year` as the installed `holidays` package computes them (what the table is checked against)."""
    import holidays  # here, not at the top: ~85 ms to import and ~100 ms for the first country it builds

    return dict(holidays.country_holidays(country, subdiv=subdivision, years=year))


def installed_version() -> str | None:
    """The version of the `holidays` package installed here, read from its metadata (None: not installed)."""
    import importlib.metadata  # pydantic has imported it already in every command that gets here

    try:
        return importlib.metadata.version("holidays")
    except importlib.metadata.PackageNotFoundError:
        return None


def table_source(version: str, first: int, last: int, country: str = "GB", subdivision: str = "ENG") -> str:
    """The text of bank_holidays_table.py: every holiday of `first`..`last` from the installed package, compactly."""
    by_year = {year: sorted(package_holidays(country, subdivision, year).items()) for year in range(first, last + 1)}
    names = sorted({name for days in by_year.values() for _, name in days})
    if len(names) > len(CODES):
        raise ValueError(f"{len(names)} holiday names: more than the table's {len(CODES)} codes")
    code = {name: CODES[index] for index, name in enumerate(names)}
    lines = [f'"""{country}-{subdivision} public holidays {first}-{last}, as holidays {version} '
             'computes them. Generated: do not edit.', "",
             "Written by `python -m releaser.bank_holidays > releaser/bank_holidays_table.py`; read by",
             "releaser.bank_holidays, which uses it only while that version of the package is installed. Each year",
             'is "MMDDc" per holiday, c the letter of its name in NAMES.', '"""', "",
             f"VERSION = {version!r}", f"COUNTRY = {country!r}", f"SUBDIVISION = {subdivision!r}", "",
             "NAMES = ("] + [f"    {name!r}," for name in names] + [")", "", "YEARS = {"]
    lines += [f'    {year}: "{" ".join(f"{day:%m%d}{code[name]}" for day, name in days)}",' for year, days in by_year.items()]
    return "\n".join(lines + ["}", ""])


def _from_table(country: str, subdivision: str | None, year: int) -> dict[date, str] | None:
    """The table's holidays of `year`, or None when the table cannot speak for the installed package."""
    if not TABLE_YEARS[0] <= year <= TABLE_YEARS[1]:
        return None
    from releaser import bank_holidays_table as table

    if (country, subdivision) != (table.COUNTRY, table.SUBDIVISION) or year not in table.YEARS:
        return None
    if table.VERSION != _version_once():
        return None
    return {date(year, int(entry[:2]), int(entry[2:4])): table.NAMES[CODES.index(entry[4])]
            for entry in table.YEARS[year].split()}


@functools.lru_cache(maxsize=1)
def _version_once() -> str | None:
    return installed_version()


def main() -> int:
    """Print bank_holidays_table.py for the installed `holidays` package."""
    version = installed_version()
    if version is None:
        print("the holidays package is not installed", file=sys.stderr)
        return 1
    sys.stdout.write(table_source(version, *TABLE_YEARS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
