/*
 * conf_lex: splits configuration text into lines of words. Handles blanks,
 * comments, "double quoted" words and ${NAME} / ${NAME:-default}
 * environment expansion; knows nothing of directives. docs/config.md
 * describes the lexical rules. Pure apart from getenv().
 */
#ifndef MAILEDGE_CONF_LEX_H
#define MAILEDGE_CONF_LEX_H

#include <stdbool.h>
#include <stddef.h>

struct lex_word {
    const char *text; /* expanded, NUL-terminated; valid until the next lex_next() */
    int col, end_col; /* 1-based byte columns of its first character and just past it */
    bool quoted;      /* written "...": never a brace or a comment */
};

/* Receives each lexical error with its 1-based line and column. */
typedef void lex_error_fn(void *arg, int line, int col, const char *msg);

struct lexer {
    const char *p, *end;
    int line; /* of the words last returned */
    bool bad; /* an error was reported on that line */
    struct lex_word *words;
    size_t nwords, wcap;
    char *buf; /* storage for the words' text */
    size_t blen, bcap;
    size_t *offs; /* word starts in buf while the line is built */
    lex_error_fn *err;
    void *arg;
};

void lex_init(struct lexer *lx, const char *text, size_t len, lex_error_fn *err, void *arg);

/*
 * Reads up to the next line holding at least one word. Returns 1 with
 * lx->words, lx->nwords, lx->line and lx->bad set; 0 at the end of the
 * text; -1 when out of memory. Blank and comment-only lines are skipped.
 */
int lex_next(struct lexer *lx);

void lex_free(struct lexer *lx);

#endif
