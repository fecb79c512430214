/*
 * conf_lex: the configuration tokenizer. One call returns one line of
 * words, already unquoted and expanded; the parser decides what they mean.
 * Expansion happens inside a word, so a value can never add words, braces
 * or comments.
 */
#include "conf_lex.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VAR_NAME_MAX 128

void
lex_init(struct lexer *lx, const char *text, size_t len, lex_error_fn *err, void *arg)
{
    memset(lx, 0, sizeof(*lx));
    lx->p = text;
    lx->end = text + len;
    lx->err = err;
    lx->arg = arg;
}

void
lex_free(struct lexer *lx)
{
    free(lx->words);
    free(lx->offs);
    free(lx->buf);
    lx->words = NULL;
    lx->offs = NULL;
    lx->buf = NULL;
    lx->nwords = lx->wcap = lx->blen = lx->bcap = 0;
}

static bool
is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static bool
is_control(char c)
{
    unsigned char u = (unsigned char)c;

    return (u < 0x20 && c != '\t' && c != '\r' && c != '\n') || u == 0x7f;
}

static bool
is_name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

static void lex_errf(struct lexer *lx, int col, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
lex_errf(struct lexer *lx, int col, const char *fmt, ...)
{
    char msg[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    lx->bad = true;
    if (lx->err != NULL)
        lx->err(lx->arg, lx->line, col, msg);
}

static int
put(struct lexer *lx, const char *s, size_t n)
{
    if (lx->bcap - lx->blen < n + 1) {
        size_t cap = lx->bcap ? lx->bcap : 256;
        while (cap - lx->blen < n + 1) {
            if (cap > SIZE_MAX / 2)
                return -1;
            cap *= 2;
        }
        char *nb = realloc(lx->buf, cap);
        if (nb == NULL)
            return -1;
        lx->buf = nb;
        lx->bcap = cap;
    }
    memcpy(lx->buf + lx->blen, s, n);
    lx->blen += n;
    return 0;
}

static int
word_begin(struct lexer *lx)
{
    if (lx->nwords == lx->wcap) {
        size_t cap = lx->wcap ? lx->wcap * 2 : 16;
        struct lex_word *nw = realloc(lx->words, cap * sizeof(*nw));
        if (nw == NULL)
            return -1;
        lx->words = nw;
        size_t *no = realloc(lx->offs, cap * sizeof(*no));
        if (no == NULL)
            return -1;
        lx->offs = no;
        lx->wcap = cap;
    }
    lx->offs[lx->nwords] = lx->blen;
    return 0;
}

static int
word_end(struct lexer *lx, int col, int end_col, bool quoted)
{
    if (put(lx, "", 1) != 0)
        return -1;
    struct lex_word *w = &lx->words[lx->nwords++];
    w->text = NULL;
    w->col = col;
    w->end_col = end_col;
    w->quoted = quoted;
    return 0;
}

/* 1-based column of <q> on the line starting at <ls>. */
static int
column(const char *ls, const char *q)
{
    ptrdiff_t d = q - ls;

    return d >= INT32_MAX ? INT32_MAX : (int)d + 1;
}

/*
 * Expands the reference at *qp ("${..."), moving *qp past it. Errors are
 * reported at the '$'; the word then goes on without the value.
 */
static int
expand(struct lexer *lx, const char **qp, const char *ls)
{
    const char *dollar = *qp, *name = dollar + 2, *close = name;
    int col = column(ls, dollar);

    while (close < lx->end && *close != '}' && *close != '\n' && *close != '"')
        close++;
    if (close == lx->end || *close != '}') {
        lex_errf(lx, col, "unterminated variable reference (missing '}' after '${')");
        *qp = close;
        return 0;
    }
    *qp = close + 1;

    const char *n = name;
    while (n < close && is_name_char(*n))
        n++;
    size_t namelen = (size_t)(n - name);
    const char *def = NULL;
    bool valid = namelen > 0 && !(name[0] >= '0' && name[0] <= '9');
    if (n < close) {
        if (close - n >= 2 && n[0] == ':' && n[1] == '-')
            def = n + 2;
        else
            valid = false;
    }
    if (!valid) {
        lex_errf(lx, col, "bad variable reference: expected ${NAME} or ${NAME:-default}");
        return 0;
    }
    if (namelen >= VAR_NAME_MAX) {
        lex_errf(lx, col, "variable name too long (at most %d characters)", VAR_NAME_MAX - 1);
        return 0;
    }
    for (const char *d = def; d != NULL && d < close; d++) {
        if (is_control(*d)) {
            lex_errf(lx, column(ls, d), "invalid character 0x%02x", (unsigned)(unsigned char)*d);
            return 0;
        }
    }

    char var[VAR_NAME_MAX];
    memcpy(var, name, namelen);
    var[namelen] = '\0';
    const char *v = getenv(var);
    /* As in the shell, ":-" also replaces a variable that is set but empty. */
    if (v != NULL && (*v != '\0' || def == NULL))
        return put(lx, v, strlen(v));
    if (def != NULL)
        return put(lx, def, (size_t)(close - def));
    lex_errf(lx, col,
             "environment variable '%s' is not set (write ${%s:-default} to give a default)", var,
             var);
    return 0;
}

/*
 * Scans the characters of a word from *qp until <stop> says so; shared by
 * bare and quoted words. Returns 1 when the word ended normally, 0 when the
 * line ended inside a quoted word, -1 when out of memory.
 */
static int
scan_word(struct lexer *lx, const char **qp, const char *ls, bool quoted)
{
    const char *q = *qp, *end = lx->end;
    int r = 1;

    for (;;) {
        if (q == end || *q == '\n') {
            r = quoted ? 0 : 1;
            break;
        }
        char c = *q;
        if (!quoted && is_blank(c))
            break;
        if (quoted && c == '"') {
            q++;
            break;
        }
        if (c == '$' && q + 1 < end && q[1] == '{') {
            if (expand(lx, &q, ls) != 0)
                return -1;
            continue;
        }
        if (c == '\\' && quoted) {
            if (q + 1 < end && (q[1] == '"' || q[1] == '\\')) {
                if (put(lx, q + 1, 1) != 0)
                    return -1;
                q += 2;
                continue;
            }
            lex_errf(lx, column(ls, q), "unknown escape in quoted word (only \\\" and \\\\ exist)");
        } else if (c == '"') {
            lex_errf(lx, column(ls, q), "'\"' inside a word (quote the whole word)");
            q++;
            continue;
        } else if (is_control(c)) {
            lex_errf(lx, column(ls, q), "invalid character 0x%02x", (unsigned)(unsigned char)c);
            q++;
            continue;
        }
        if (put(lx, q, 1) != 0)
            return -1;
        q++;
    }
    *qp = q;
    return r;
}

static int
scan_line(struct lexer *lx)
{
    const char *ls = lx->p, *q = lx->p, *end = lx->end;

    lx->line++;
    lx->nwords = 0;
    lx->blen = 0;
    lx->bad = false;
    for (;;) {
        while (q < end && is_blank(*q))
            q++;
        if (q == end || *q == '\n')
            break;
        if (*q == '#') {
            while (q < end && *q != '\n')
                q++;
            break;
        }
        int col = column(ls, q);
        bool quoted = *q == '"';
        if (word_begin(lx) != 0)
            return -1;
        if (quoted)
            q++;
        int r = scan_word(lx, &q, ls, quoted);
        if (r < 0)
            return -1;
        if (r == 0) {
            lex_errf(lx, col, "unterminated quoted word (missing closing '\"')");
            lx->blen = lx->offs[lx->nwords];
            break;
        }
        if (word_end(lx, col, column(ls, q), quoted) != 0)
            return -1;
        if (quoted && q < end && *q != '\n' && !is_blank(*q))
            lex_errf(lx, column(ls, q), "expected a blank after the closing '\"'");
    }
    while (q < end && *q != '\n')
        q++;
    lx->p = q < end ? q + 1 : q;
    /* buf may have moved while the line grew: point the words now. */
    for (size_t i = 0; i < lx->nwords; i++)
        lx->words[i].text = lx->buf + lx->offs[i];
    return 0;
}

int
lex_next(struct lexer *lx)
{
    while (lx->p < lx->end) {
        if (scan_line(lx) != 0)
            return -1;
        if (lx->nwords > 0)
            return 1;
    }
    lx->nwords = 0;
    return 0;
}
