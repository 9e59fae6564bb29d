/* Tests of the JSON Schema, JSON object, GBNF and tool-call sources: documents each grammar
 * accepts and refuses (bounds, formats, order, required keys, recursion), the messages of
 * schemas that cannot compile, and masks equal to the brute-force answer along random walks
 * (which exercises rule pushes and pops). */
#include <stdio.h>

#include "engine/grammar/schema.h"
#include "tests/check_run.h"
#include "tests/engine/grammar/grammar_test.h"

static struct tok *tok;
static struct gv *voc;
static int32_t eos;

static void setup(void)
{
    tok = gt_tok();
    voc = gv_create(tok, tok_n_vocab(tok));
    eos = tok_eos_id(tok);
}

static void teardown(void)
{
    gv_destroy(voc);
    tok_destroy(tok);
}

/* ---- building trees ---- */

static struct jss nodes[64];
static int n_nodes;

static struct jss *node(unsigned types)
{
    struct jss *s = &nodes[n_nodes++];
    *s = jss_default("test");
    s->types = types;
    return s;
}

static int class_depth; /* 0: the default */

static struct gram *compile(struct jss *root, struct jss *const *defs, int n_defs)
{
    struct jss_doc d = {.root = root, .defs = defs, .n_defs = n_defs};
    struct err e = {0};
    struct gram_limits lim = gram_limits_default();
    if (class_depth) lim.class_depth = class_depth;
    struct gram *g = gram_from_schema(&d, GRAM_WS_COMPACT, &lim, &e);
    ck_assert_msg(g != NULL, "%s", e.msg);
    n_nodes = 0;
    return g;
}

static const char *compile_error(struct jss *root, struct jss *const *defs, int n_defs)
{
    static struct err e;
    struct jss_doc d = {.root = root, .defs = defs, .n_defs = n_defs};
    memset(&e, 0, sizeof e);
    struct gram *g = gram_from_schema(&d, GRAM_WS_COMPACT, NULL, &e);
    ck_assert_msg(g == NULL, "compiled");
    n_nodes = 0;
    return e.msg;
}

START_TEST(object_properties)
{
    struct jss *a = node(JSS_STRING), *b = node(JSS_INTEGER), *c = node(JSS_BOOLEAN);
    a->max_length = 3;
    b->minimum = "0", b->maximum = "100";
    struct jss_prop props[] = {{"a", 1, a, true}, {"b", 1, b, true}, {"c", 1, c, false}};
    struct jss *o = node(JSS_OBJECT);
    o->props = props, o->n_props = 3;
    struct gram *g = compile(o, NULL, 0);
    ck_assert(gt_matches(g, "{\"a\": \"xy\", \"b\": 42}"));
    ck_assert(gt_matches(g, "{\"a\":\"xy\",\"b\":42,\"c\":true}"));
    ck_assert(gt_matches(g, "{\"a\":\"\",\"b\":0}"));
    ck_assert(gt_matches(g, "{\"a\":\"\u00e9\\n\\\"\",\"b\":100}"));
    ck_assert(!gt_matches(g, "{\"b\":42,\"a\":\"xy\"}"));
    ck_assert(!gt_matches(g, "{\"a\":\"abcd\",\"b\":1}"));
    ck_assert(!gt_matches(g, "{\"a\":\"x\",\"b\":101}"));
    ck_assert(!gt_matches(g, "{\"a\":\"x\"}"));
    ck_assert(!gt_matches(g, "{\"a\":\"x\",\"b\":-0}"));
    ck_assert(!gt_matches(g, "{\"a\":\"x\",\"b\":1,\"d\":1}"));
    ck_assert(!gt_matches(g, "{\"a\":\"\\u000a\",\"b\":1}")); /* one spelling per character */
    ck_assert(!gt_matches(g, "{ \"a\":\"x\",\"b\":1}"));
    ck_assert(!gt_matches(g, "{\"a\":  \"x\",\"b\":1}"));
    ck_assert_int_gt(gram_max_bytes(g), 20);
    for (unsigned s = 0; s < 4; s++) ck_assert(gt_random_walk(g, voc, eos, 200, s));
    gram_unref(g);
}
END_TEST

/* Bounded strings and arrays share classes across positions; with classes trusted 3 bytes deep
 * nearly every token is checked against the real stack. Masks must still be exact. */
START_TEST(shallow_classes_on_a_bounded_object)
{
    class_depth = 3;
    struct jss *a = node(JSS_STRING), *b = node(JSS_ARRAY), *i = node(JSS_INTEGER),
               *o = node(JSS_OBJECT);
    a->min_length = 2, a->max_length = 12;
    i->minimum = "-20", i->maximum = "300";
    b->items = i, b->max_items = 4;
    struct jss_prop props[] = {{"name", 4, a, true}, {"vals", 4, b, true}};
    o->props = props, o->n_props = 2;
    struct gram *g = compile(o, NULL, 0);
    class_depth = 0;
    for (unsigned s = 0; s < 4; s++) ck_assert(gt_random_walk(g, voc, eos, 120, 40 + s));
    gram_unref(g);
}
END_TEST

START_TEST(number_bounds)
{
    struct {
        unsigned type;
        const char *min, *max;
        int xmin, xmax;
        const char *yes[4], *no[4];
    } cases[] = {
        {JSS_INTEGER, "-5", "5", 0, 0, {"-5", "0", "5", "-1"}, {"-6", "6", "-0", "05"}},
        {JSS_NUMBER, "0", "1.5", 1, 0, {"0.1", "1.5", "1", "0.000001"}, {"0", "1.51", "0.0", "2"}},
        {JSS_INTEGER,
         "1.5",
         NULL,
         0,
         0,
         {"2", "10", "999999999999999", "3"},
         {"1", "0", "-2", "1000000000000000"}},
        {JSS_NUMBER,
         NULL,
         "-0.25",
         0,
         1,
         {"-0.26", "-1", "-300.5", "-0.2500001"},
         {"-0.25", "0", "-0.2", "1"}},
        {JSS_NUMBER,
         "1e-3",
         "1e3",
         0,
         0,
         {"0.001", "1000", "999.999", "0.0010"},
         {"0.0009", "1000.01", "1e3", "0"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct jss *n = node(cases[i].type);
        n->minimum = cases[i].min, n->maximum = cases[i].max;
        n->exclusive_minimum = cases[i].xmin, n->exclusive_maximum = cases[i].xmax;
        struct gram *g = compile(n, NULL, 0);
        for (int k = 0; k < 4; k++) {
            ck_assert_msg(gt_matches(g, cases[i].yes[k]), "case %zu: %s refused", i,
                          cases[i].yes[k]);
            ck_assert_msg(!gt_matches(g, cases[i].no[k]), "case %zu: %s accepted", i,
                          cases[i].no[k]);
        }
        gt_random_walk(g, voc, eos, 40, (unsigned)i);
        gram_unref(g);
    }
    struct jss *n = node(JSS_INTEGER);
    n->minimum = "0.5", n->maximum = "0.7";
    ck_assert_ptr_nonnull(strstr(compile_error(n, NULL, 0), "no integer"));
}
END_TEST

START_TEST(strings_patterns_formats)
{
    struct jss *p = node(JSS_STRING);
    p->pattern = "^[a-z]+$";
    p->max_length = 5;
    struct gram *g = compile(p, NULL, 0);
    ck_assert(gt_matches(g, "\"abc\""));
    ck_assert(!gt_matches(g, "\"abcdef\""));
    ck_assert(!gt_matches(g, "\"\""));
    ck_assert(!gt_matches(g, "\"aB\""));
    gram_unref(g);
    p = node(JSS_STRING);
    p->pattern = "[0-9]{3}"; /* unanchored: anywhere in the string */
    g = compile(p, NULL, 0);
    ck_assert(gt_matches(g, "\"x123y\""));
    ck_assert(gt_matches(g, "\"\\\"123\""));
    ck_assert(!gt_matches(g, "\"12x3\""));
    gram_unref(g);
    static const struct {
        enum jss_format f;
        const char *yes[3], *no[3];
    } fm[] = {
        {JSS_FMT_DATE,
         {"\"2024-02-29\"", "\"0001-12-31\"", "\"2000-02-29\""},
         {"\"2023-02-29\"", "\"0000-01-01\"", "\"1900-02-29\""}},
        {JSS_FMT_TIME,
         {"\"23:59:59Z\"", "\"00:00:00.5+05:30\"", "\"12:00:00-01:00\""},
         {"\"24:00:00Z\"", "\"12:00:00\"", "\"12:60:00Z\""}},
        {JSS_FMT_DATE_TIME,
         {"\"2024-01-01T00:00:00Z\"", "\"1999-12-31T23:59:59.999+01:00\"",
          "\"2020-02-29T12:00:00Z\""},
         {"\"2024-01-01 00:00:00Z\"", "\"2024-01-01T00:00Z\"", "\"2021-02-29T12:00:00Z\""}},
        {JSS_FMT_UUID,
         {"\"123e4567-e89b-12d3-a456-426614174000\"", "\"00000000-0000-0000-0000-000000000000\"",
          "\"ffffffff-ffff-ffff-ffff-ffffffffffff\""},
         {"\"123e4567e89b12d3a456426614174000\"", "\"123e4567-e89b-12d3-a456-42661417400\"",
          "\"g23e4567-e89b-12d3-a456-426614174000\""}},
        {JSS_FMT_EMAIL,
         {"\"a@b.co\"", "\"first.last+x@mail.example.org\"", "\"x_y@z-1.io\""},
         {"\"a.b.co\"", "\"@b.co\"", "\"a@b\""}},
    };
    for (size_t i = 0; i < sizeof fm / sizeof fm[0]; i++) {
        p = node(JSS_STRING);
        p->format = fm[i].f;
        g = compile(p, NULL, 0);
        for (int k = 0; k < 3; k++) {
            ck_assert_msg(gt_matches(g, fm[i].yes[k]), "%s refused", fm[i].yes[k]);
            ck_assert_msg(!gt_matches(g, fm[i].no[k]), "%s accepted", fm[i].no[k]);
        }
        ck_assert_int_gt(gram_max_bytes(g), 0);
        gram_unref(g);
    }
    p = node(JSS_STRING);
    p->pattern = "(?=x)";
    ck_assert_ptr_nonnull(strstr(compile_error(p, NULL, 0), "test.pattern: lookahead"));
    p = node(JSS_STRING);
    p->min_length = 4, p->max_length = 2;
    ck_assert_ptr_nonnull(strstr(compile_error(p, NULL, 0), "minLength"));
}
END_TEST

START_TEST(arrays)
{
    struct jss *i = node(JSS_INTEGER), *a = node(JSS_ARRAY);
    i->minimum = "0", i->maximum = "9";
    a->items = i, a->min_items = 1, a->max_items = 3;
    struct gram *g = compile(a, NULL, 0);
    ck_assert(gt_matches(g, "[1]"));
    ck_assert(gt_matches(g, "[1, 2,3]"));
    ck_assert(!gt_matches(g, "[]"));
    ck_assert(!gt_matches(g, "[1,2,3,4]"));
    ck_assert(!gt_matches(g, "[10]"));
    for (unsigned s = 0; s < 3; s++) ck_assert(gt_random_walk(g, voc, eos, 60, s));
    gram_unref(g);
    struct jss *s0 = node(JSS_STRING), *s1 = node(JSS_INTEGER);
    struct jss *const prefix[] = {s0, s1};
    a = node(JSS_ARRAY);
    a->prefix_items = prefix, a->n_prefix_items = 2, a->no_more_items = true;
    g = compile(a, NULL, 0);
    ck_assert(gt_matches(g, "[\"x\", 1]"));
    ck_assert(gt_matches(g, "[\"x\"]"));
    ck_assert(gt_matches(g, "[]"));
    ck_assert(!gt_matches(g, "[1, \"x\"]"));
    ck_assert(!gt_matches(g, "[\"x\", 1, 2]"));
    gram_unref(g);
    a = node(JSS_ARRAY); /* items unconstrained, unbounded */
    g = compile(a, NULL, 0);
    ck_assert(gt_matches(g, "[1, \"a\", [null, {\"k\": true}], -2.5]"));
    gram_unref(g);
}
END_TEST

START_TEST(any_of_enum_const)
{
    struct jss *s = node(JSS_STRING), *n = node(JSS_NULL), *u = node(0);
    struct jss *const alts[] = {s, n};
    u->any_of = alts, u->n_any_of = 2;
    struct gram *g = compile(u, NULL, 0);
    ck_assert(gt_matches(g, "null"));
    ck_assert(gt_matches(g, "\"x\""));
    ck_assert(!gt_matches(g, "1"));
    gram_unref(g);
    static const char *const vals[] = {"\"red\"", "\"green\"", "1", "{\"a\":[1,2]}", "null"};
    struct jss *e = node(JSS_ANY);
    e->values = vals, e->n_values = 5;
    g = compile(e, NULL, 0);
    ck_assert(gt_matches(g, "\"green\""));
    ck_assert(gt_matches(g, "{\"a\":[1,2]}"));
    ck_assert(!gt_matches(g, "\"blue\""));
    ck_assert(!gt_matches(g, "2"));
    ck_assert_int_eq(gram_max_bytes(g), 11);
    gram_unref(g);
    e = node(JSS_ANY);
    e->values = vals, e->n_values = 0;
    ck_assert_ptr_nonnull(strstr(compile_error(e, NULL, 0), "enum"));
    ck_assert_ptr_nonnull(strstr(compile_error(node(0), NULL, 0), "no value"));
}
END_TEST

START_TEST(recursive_refs)
{
    /* defs[0]: {"value": integer, "children": [defs[0]] (maxItems 2)} */
    struct jss *val = node(JSS_INTEGER), *kid = node(JSS_ANY), *kids = node(JSS_ARRAY);
    struct jss *tree = node(JSS_OBJECT), *root = node(JSS_ANY);
    val->minimum = "0", val->maximum = "9";
    kid->ref = 0;
    kids->items = kid, kids->max_items = 2;
    struct jss_prop props[] = {{"value", 5, val, true}, {"children", 8, kids, true}};
    tree->props = props, tree->n_props = 2;
    root->ref = 0;
    struct jss *const defs[] = {tree};
    struct gram *g = compile(root, defs, 1);
    ck_assert(gt_matches(g, "{\"value\": 1, \"children\": []}"));
    ck_assert(gt_matches(
        g,
        "{\"value\":1,\"children\":[{\"value\":2,\"children\":[{\"value\":3,\"children\":[]}]}]}"));
    ck_assert(!gt_matches(g, "{\"value\":1,\"children\":[{\"value\":2}]}"));
    ck_assert_int_eq(gram_max_bytes(g), -1);
    for (unsigned s = 0; s < 4; s++) gt_random_walk(g, voc, eos, 60, s);
    gram_unref(g);
    /* {"$ref": "#/$defs/a"} where a is {"anyOf": [{"$ref": "#/$defs/a"}, null]}: left recursion */
    struct jss *self = node(JSS_ANY), *nul = node(JSS_NULL), *a = node(0);
    self->ref = 0;
    struct jss *const alts[] = {self, nul};
    a->any_of = alts, a->n_any_of = 2;
    a->path = "$defs.a";
    root = node(JSS_ANY);
    root->ref = 0;
    struct jss *const defs2[] = {a};
    ck_assert_ptr_nonnull(strstr(compile_error(root, defs2, 1), "left-recursive"));
}
END_TEST

START_TEST(additional_properties)
{
    struct jss *a = node(JSS_INTEGER), *extra = node(JSS_STRING), *o = node(JSS_OBJECT);
    struct jss_prop props[] = {{"ab", 2, a, false}};
    o->props = props, o->n_props = 1, o->additional = extra;
    struct gram *g = compile(o, NULL, 0);
    ck_assert(gt_matches(g, "{\"ab\": 1, \"x\": \"y\"}"));
    ck_assert(gt_matches(g, "{\"a\": \"y\", \"abc\": \"z\", \"\": \"\"}"));
    ck_assert(!gt_matches(g, "{\"ab\": 1, \"ab\": \"y\"}"));
    ck_assert(!gt_matches(g, "{\"x\": 1}"));
    gram_unref(g);
}
END_TEST

START_TEST(json_object_mode)
{
    struct err e = {0};
    struct gram *g = gram_json_object(GRAM_WS_COMPACT, NULL, &e);
    ck_assert_msg(g != NULL, "%s", e.msg);
    ck_assert(gt_matches(g, "{\"a\": [1, {\"b\": null}, -0.5, true], \"c\": \"x\"}"));
    ck_assert(gt_matches(g, "{}"));
    ck_assert(!gt_matches(g, "[1]"));
    ck_assert(!gt_matches(g, "{\"a\": 1,}"));
    ck_assert(!gt_matches(g, "{\"a\": 01}"));
    for (unsigned s = 0; s < 4; s++) gt_random_walk(g, voc, eos, 40, s);
    gram_unref(g);
}
END_TEST

START_TEST(nesting_is_bounded)
{
    struct jss deep[80];
    for (int i = 0; i < 80; i++) {
        deep[i] = jss_default("deep");
        deep[i].types = JSS_ARRAY;
        deep[i].items = i + 1 < 80 ? &deep[i + 1] : NULL;
    }
    ck_assert_ptr_nonnull(strstr(compile_error(&deep[0], NULL, 0), "nested deeper"));
    struct jss *s = node(JSS_STRING);
    s->max_length = 1000000;
    ck_assert_ptr_nonnull(compile_error(s, NULL, 0));
}
END_TEST

START_TEST(gbnf)
{
    static const char text[] = "root ::= \"[\" ws (item (\",\" ws item)*)? \"]\"  # a list\n"
                               "item ::= num | str\n"
                               "  | \"null\"\n"
                               "num ::= \"-\"? [0-9]{1,3}\n"
                               "str ::= \"\\\"\" [^\"\\x00-\\x1f]* \"\\\"\"\n"
                               "ws ::= [ ]?\n";
    struct err e = {0};
    struct gram *g = gram_from_gbnf(text, sizeof text - 1, voc->n_vocab, NULL, &e);
    ck_assert_msg(g != NULL, "%s", e.msg);
    ck_assert(gt_matches(g, "[1, \"a\",null,-12]"));
    ck_assert(gt_matches(g, "[]"));
    ck_assert(!gt_matches(g, "[1234]"));
    for (unsigned s = 0; s < 4; s++) gt_random_walk(g, voc, eos, 40, s);
    gram_unref(g);
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"root ::= a\na ::= a \"x\" | \"y\"\n", "left-recursive"},
        {"root ::= b\n", "'b' is used but never defined"},
        {"root ::= \"x\"\nroot ::= \"y\"\n", "defined twice"},
        {"root ::= [a-\n", "character range out of order"},
        {"root ::= (((\"x\")\n", "expected ')'"},
        {"root ::= <[999999]>\n", "not in the vocabulary"},
        {"start ::= \"x\"\n", "'root'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&e, 0, sizeof e);
        g = gram_from_gbnf(bad[i].text, strlen(bad[i].text), voc->n_vocab, NULL, &e);
        ck_assert_msg(g == NULL, "%s compiled", bad[i].text);
        ck_assert_msg(strstr(e.msg, bad[i].want), "%s: %s", bad[i].text, e.msg);
    }
}
END_TEST

/* Thousands of rules alive at the first byte: refused at compile time by the ambiguity bound,
 * given the work budget to get there. */
START_TEST(too_ambiguous_to_start)
{
    enum { N = GM_MAX_TOPS + 100 };
    size_t cap = (size_t)N * 48 + 64, n = 0;
    char *text = malloc(cap);
    n += (size_t)snprintf(text + n, cap - n, "root ::= r0");
    for (int i = 1; i < N; i++) n += (size_t)snprintf(text + n, cap - n, " | r%d", i);
    n += (size_t)snprintf(text + n, cap - n, "\n");
    for (int i = 0; i < N; i++)
        n += (size_t)snprintf(text + n, cap - n, "r%d ::= \"a\"+ \"%d\"\n", i, i);
    struct gram_limits lim = gram_limits_default();
    lim.max_work = 2000000000;
    struct err e = {0};
    struct gram *g = gram_from_gbnf(text, n, voc->n_vocab, &lim, &e);
    ck_assert_ptr_null(g);
    ck_assert_msg(strstr(e.msg, "ambiguous"), "%s", e.msg);
    free(text);
}
END_TEST

START_TEST(tool_calls)
{
    struct jss *city = node(JSS_STRING), *params = node(JSS_OBJECT);
    city->max_length = 20;
    struct jss_prop props[] = {{"city", 4, city, true}};
    params->props = props, params->n_props = 1;
    struct jss_doc d = {.root = params};
    struct jss *none = node(JSS_OBJECT);
    struct jss_doc d2 = {.root = none};
    struct gram_tool fns[] = {{"get_weather", &d}, {"now", &d2}};
    struct gram_tools t = {
        .format = GRAM_TOOLS_HERMES, .tools = fns, .n_tools = 2, .parallel = true};
    struct err e = {0};
    struct gram *g = gram_tools(&t, voc->n_vocab, NULL, &e);
    ck_assert_msg(g != NULL, "%s", e.msg);
    ck_assert(gt_matches(g, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
                            "\"Paris\"}}\n</tool_call>"));
    ck_assert(gt_matches(
        g, "<tool_call>\n{\"name\": \"now\", \"arguments\": "
           "{}}\n</tool_call>\n<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>"));
    ck_assert(
        !gt_matches(g, "<tool_call>\n{\"name\": \"other\", \"arguments\": {}}\n</tool_call>"));
    ck_assert(!gt_matches(
        g, "<tool_call>\n{\"name\": \"now\", \"arguments\": {\"city\": \"x\"}}\n</tool_call>"));
    for (unsigned s = 0; s < 3; s++) ck_assert(gt_random_walk(g, voc, eos, 300, s));
    gram_unref(g);
    /* DeepSeek markers are special tokens: feed the token ids */
    int32_t mk[GRAM_DS_N_MARKERS];
    const char *names[] = {"<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>",
                           "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>"};
    for (int i = 0; i < GRAM_DS_N_MARKERS; i++)
        ck_assert_int_ge(mk[i] = tok_added_id(tok, names[i]), 0);
    t = (struct gram_tools){.format = GRAM_TOOLS_DEEPSEEK, .tools = fns, .n_tools = 1};
    memcpy(t.marker, mk, sizeof mk);
    g = gram_tools(&t, voc->n_vocab, NULL, &e);
    ck_assert_msg(g != NULL, "%s", e.msg);
    struct gm *m = gm_create(g, &e);
    ck_assert_int_eq(gm_accept_token(m, voc, mk[GRAM_DS_CALLS_BEGIN], &e), 0);
    ck_assert_int_eq(gm_accept_token(m, voc, mk[GRAM_DS_CALL_BEGIN], &e), 0);
    ck_assert_int_eq(gm_accept_bytes(m, (const uint8_t *)"function", 8, &e), 0);
    ck_assert_int_eq(gm_accept_token(m, voc, mk[GRAM_DS_SEP], &e), 0);
    const char *body = "get_weather\n```json\n{\"city\": \"Oslo\"}\n```";
    ck_assert_int_eq(gm_accept_bytes(m, (const uint8_t *)body, strlen(body), &e), 0);
    ck_assert_int_eq(gm_accept_token(m, voc, mk[GRAM_DS_CALL_END], &e), 0);
    ck_assert_int_eq(gm_accept_token(m, voc, mk[GRAM_DS_CALLS_BEGIN], &e), -1); /* not parallel */
    ck_assert_int_eq(gm_accept_token(m, voc, mk[GRAM_DS_CALLS_END], &e), 0);
    ck_assert(gm_finished(m));
    gm_destroy(m);
    for (unsigned s = 0; s < 3; s++) ck_assert(gt_random_walk(g, voc, eos, 300, s));
    gram_unref(g);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("grammar_schema");
    TCase *c = tcase_create("schema");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_set_timeout(c, 300);
    tcase_add_test(c, object_properties);
    tcase_add_test(c, shallow_classes_on_a_bounded_object);
    tcase_add_test(c, number_bounds);
    tcase_add_test(c, strings_patterns_formats);
    tcase_add_test(c, arrays);
    tcase_add_test(c, any_of_enum_const);
    tcase_add_test(c, recursive_refs);
    tcase_add_test(c, additional_properties);
    tcase_add_test(c, json_object_mode);
    tcase_add_test(c, nesting_is_bounded);
    tcase_add_test(c, gbnf);
    tcase_add_test(c, too_ambiguous_to_start);
    tcase_add_test(c, tool_calls);
    suite_add_tcase(s, c);
    return s;
}

int main(void)
{
    return check_run(suite(), 0);
}
