/* Calendar arithmetic for PQL, in UTC: unit floors (weeks start on Sunday), adding calendar units
 * (months clamp the day: Jan 31 + 1 month = Feb 28/29), civil dates. */
#include <string.h>
#include <strings.h>

#include "pql_int.h"

#define DAY_MS 86400000LL

static int64_t floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* Howard Hinnant's days_from_civil / civil_from_days. */
int64_t pql_time_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (unsigned)(m + (m > 2 ? -3 : 9)) + 2) / 5 + (unsigned)d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (era * 146097 + (int64_t)doe - 719468) * DAY_MS;
}

void pql_time_civil(int64_t t, int *y, int *m, int *d)
{
    int64_t z = floordiv(t, DAY_MS) + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yy + (*m <= 2));
}

static const int64_t fixed_ms[] = {1, 1000, 60000, 3600000, DAY_MS, 7 * DAY_MS};

int64_t pql_time_floor(int64_t t, int unit)
{
    if (unit <= U_DAY) return floordiv(t, fixed_ms[unit]) * fixed_ms[unit];
    if (unit == U_WEEK) {
        /* 1970-01-04 was a Sunday */
        int64_t days = floordiv(t, DAY_MS) - 3;
        return (floordiv(days, 7) * 7 + 3) * DAY_MS;
    }
    int y, m, d;
    pql_time_civil(t, &y, &m, &d);
    switch (unit) {
    case U_MONTH:
        return pql_time_from_civil(y, m, 1);
    case U_YEAR:
        return pql_time_from_civil(y, 1, 1);
    case U_DECADE:
        return pql_time_from_civil((int)floordiv(y, 10) * 10, 1, 1);
    case U_CENTURY:
        return pql_time_from_civil((int)floordiv(y, 100) * 100, 1, 1);
    default:
        return pql_time_from_civil((int)floordiv(y, 1000) * 1000, 1, 1);
    }
}

static int month_days(int y, int m)
{
    static const int md[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return md[m - 1];
}

int64_t pql_time_add(int64_t t, int unit, int64_t n)
{
    if (n > 100000000 || n < -100000000) n = n > 0 ? 100000000 : -100000000;
    if (unit <= U_WEEK) return t + n * fixed_ms[unit];
    int64_t months = n * (unit == U_MONTH     ? 1
                          : unit == U_YEAR    ? 12
                          : unit == U_DECADE  ? 120
                          : unit == U_CENTURY ? 1200
                                              : 12000);
    int y, m, d;
    pql_time_civil(t, &y, &m, &d);
    int64_t tod = t - pql_time_from_civil(y, m, d);
    int64_t mi = (int64_t)y * 12 + (m - 1) + months;
    int ny = (int)floordiv(mi, 12), nm = (int)(mi - floordiv(mi, 12) * 12) + 1;
    int dd = d > month_days(ny, nm) ? month_days(ny, nm) : d;
    return pql_time_from_civil(ny, nm, dd) + tod;
}

const char *const pql_unit_names[] = {"millisecond", "second",  "minute",    "hour",
                                      "day",         "week",    "month",     "year",
                                      "decade",      "century", "millennium"};

int pql_unit_parse(const char *s, size_t n)
{
    static const struct {
        const char *name;
        int unit;
    } u[] = {{"millisecond", U_MS},
             {"milliseconds", U_MS},
             {"second", U_SEC},
             {"seconds", U_SEC},
             {"minute", U_MIN},
             {"minutes", U_MIN},
             {"hour", U_HOUR},
             {"hours", U_HOUR},
             {"day", U_DAY},
             {"days", U_DAY},
             {"week", U_WEEK},
             {"weeks", U_WEEK},
             {"month", U_MONTH},
             {"months", U_MONTH},
             {"year", U_YEAR},
             {"years", U_YEAR},
             {"decade", U_DECADE},
             {"decades", U_DECADE},
             {"century", U_CENTURY},
             {"centuries", U_CENTURY},
             {"millennium", U_MILLENNIUM},
             {"millennia", U_MILLENNIUM}};
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++)
        if (strlen(u[i].name) == n && strncasecmp(u[i].name, s, n) == 0) return u[i].unit;
    return -1;
}
