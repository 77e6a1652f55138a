/* Unit tests: base (time parsing and formatting, buffers, hex, errors). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kith/base.h"

static void test_time_parse(void **state)
{
    int64_t ms;
    assert_int_equal(kith_time_parse("1970-01-01T00:00:00Z", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(kith_time_parse("2024-02-29T12:30:15.123Z", &ms), 0);
    assert_int_equal(ms, 1709209815123LL);
    assert_int_equal(kith_time_parse("2024-02-29T14:30:15.123+02:00", &ms), 0);
    assert_int_equal(ms, 1709209815123LL);
    assert_int_equal(kith_time_parse("2024-02-29T12:30:15.1234567Z", &ms), 0);
    assert_int_equal(ms, 1709209815123LL);
    assert_int_equal(kith_time_parse("1969-12-31T23:59:59Z", &ms), 0);
    assert_int_equal(ms, -1000);
    /* Rejected: no zone, bad day, bad month, trailing text, empty fraction. */
    assert_int_equal(kith_time_parse("2024-02-29T12:30:15", &ms), KITH_EINVAL);
    assert_int_equal(kith_time_parse("2023-02-29T12:30:15Z", &ms), KITH_EINVAL);
    assert_int_equal(kith_time_parse("2024-13-01T00:00:00Z", &ms), KITH_EINVAL);
    assert_int_equal(kith_time_parse("2024-01-01T00:00:00Zx", &ms), KITH_EINVAL);
    assert_int_equal(kith_time_parse("2024-01-01T00:00:00.Z", &ms), KITH_EINVAL);
    assert_int_equal(kith_time_parse("2024-01-01T24:00:00Z", &ms), KITH_EINVAL);
    assert_int_equal(kith_time_parse("", &ms), KITH_EINVAL);
}

static void test_date_parse(void **state)
{
    int64_t ms;
    assert_int_equal(kith_date_parse("2000-03-01", &ms), 0);
    assert_int_equal(ms, 951868800000LL);
    assert_int_equal(kith_date_parse("2000-02-30", &ms), KITH_EINVAL);
    assert_int_equal(kith_date_parse("2000-3-01", &ms), KITH_EINVAL);
}

static void test_time_format_roundtrip(void **state)
{
    char buf[40];
    assert_string_equal(kith_time_format(0, buf, sizeof buf), "1970-01-01T00:00:00Z");
    assert_string_equal(kith_time_format(1709209815123LL, buf, sizeof buf), "2024-02-29T12:30:15.123Z");
    int64_t ms;
    for (int64_t t = -86400000LL * 400; t < 86400000LL * 40000; t += 86400000LL * 37 + 12345) {
        kith_time_format(t, buf, sizeof buf);
        assert_int_equal(kith_time_parse(buf, &ms), 0);
        assert_int_equal(ms, t);
    }
}

static void test_buf_and_hex(void **state)
{
    kith_buf b = {0};
    for (int i = 0; i < 1000; i++) kith_buf_printf(&b, "%d,", i);
    assert_true(b.len > 3000);
    assert_memory_equal(b.data, "0,1,2,", 6);
    assert_int_equal(b.data[b.len], 0);
    kith_buf_free(&b);
    char hex[9];
    uint8_t raw[4] = {0xde, 0xad, 0x01, 0x0f};
    kith_hex(raw, 4, hex);
    assert_string_equal(hex, "dead010f");
    uint8_t be[8];
    kith_put_be64(be, 0x0102030405060708ull);
    assert_int_equal(be[0], 1);
    assert_int_equal(kith_get_be64(be), 0x0102030405060708ull);
}

static void test_errors(void **state)
{
    assert_int_equal(kith_err_http_status(KITH_EINVAL), 400);
    assert_int_equal(kith_err_http_status(KITH_EBUSY), 429);
    assert_int_equal(kith_err_http_status(KITH_ENOTFOUND), 404);
    assert_int_equal(kith_err_http_status(0), 200);
    assert_string_equal(kith_strerror(KITH_ETOOLARGE), "Payload Too Large");
}

static void test_utf8_sanitize(void **state)
{
    char a[] = "caf\xc3\xa9";
    assert_string_equal(kith_utf8_sanitize(a), "caf\xc3\xa9");
    char b[] = "cut \xe6\x97"; /* a 3-byte sequence cut after 2 bytes */
    assert_string_equal(kith_utf8_sanitize(b), "cut ");
    char c[] = "bad \xff byte \xc0\xaf";
    assert_string_equal(kith_utf8_sanitize(c), "bad ? byte ??");
    char d[] = "surrogate \xed\xa0\x80.";
    assert_string_equal(kith_utf8_sanitize(d), "surrogate ???.");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_parse),  cmocka_unit_test(test_date_parse),
        cmocka_unit_test(test_time_format_roundtrip), cmocka_unit_test(test_buf_and_hex),
        cmocka_unit_test(test_errors),      cmocka_unit_test(test_utf8_sanitize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
