/*
 * Loading a configuration in the unit tests of the conf_* files: from a
 * string, or through a temporary file (for what only a file has: its
 * directory, permissions of files it names), expecting success or the
 * first diagnostic at LINE:COL.
 */
#ifndef MAILEDGE_TEST_CONF_LOAD_H
#define MAILEDGE_TEST_CONF_LOAD_H

static struct conf *
load(const char *text, bool from_file, struct diag_list *d)
{
    struct conf *c = NULL;

    if (!from_file) {
        conf_load_string("test.conf", text, strlen(text), false, &c, d);
        return c;
    }
    char path[] = "/tmp/mailedge-test-conf-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    conf_load(path, &c, d);
    unlink(path);
    return c;
}

static struct conf *
load_ok(const char *text, bool from_file)
{
    struct diag_list d = {0};
    struct conf *c = load(text, from_file, &d);
    if (c == NULL) {
        diag_list_print(&d, stderr);
        fail_msg("expected the configuration to load");
    }
    diag_list_free(&d);
    return c;
}

static void
load_bad(const char *text, bool from_file, int line, int col, const char *msg)
{
    struct diag_list d = {0};
    struct conf *c = load(text, from_file, &d);
    assert_null(c);
    if (d.n == 0 || d.v[0].line != line || d.v[0].col != col || strstr(d.v[0].msg, msg) == NULL) {
        diag_list_print(&d, stderr);
        fail_msg("expected %d:%d: %s", line, col, msg);
    }
    diag_list_free(&d);
}

#endif
