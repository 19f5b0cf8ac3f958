/* oai_wire: the OpenAI JSON both sides share. Requests parse into what they
 * say and every bad field is named; responses, chunks, errors and
 * embeddings have OpenAI's shapes; what the client writes the server
 * parses back. */
#include <string.h>

#include "llm/oai_wire.h"
#include "test.h"

static int parse(OaiKind kind, const char *body, OaiRequest *r, Err *e) {
    return oai_request_parse(kind, body, strlen(body), r, e);
}

static void test_chat_request_fields(void) {
    OaiRequest r;
    Err e;
    CHECK_OK(parse(OAI_CHAT,
                   "{\"model\": \"m\", \"messages\": [{\"role\": \"developer\", \"content\": \"Be brief.\"}, "
                   "{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"a\"}, {\"type\": \"text\", "
                   "\"text\": \"b\"}]}], \"max_completion_tokens\": 7, \"temperature\": 0.5, \"top_p\": 0.9, "
                   "\"seed\": 3, \"stop\": \"\\n\", \"n\": 2, \"logprobs\": true, \"top_logprobs\": 4, "
                   "\"logit_bias\": {\"12\": -100}, \"presence_penalty\": 0.5, \"frequency_penalty\": -1, "
                   "\"top_k\": 40, \"min_p\": 0.1, \"repetition_penalty\": 1.2, \"stream\": true, "
                   "\"stream_options\": {\"include_usage\": true}, \"user\": \"ignored\"}",
                   &r, &e),
             &e);
    CHECK_EQ_STR(r.model, "m");
    CHECK_EQ_INT(r.n_messages, 2);
    CHECK_EQ_STR(r.messages[0].role, "system"); /* OpenAI's newer name for it */
    CHECK_EQ_STR(r.messages[1].content, "ab");
    CHECK_EQ_INT(r.max_tokens, 7);
    CHECK_NEAR(r.temperature, 0.5, 0);
    CHECK_EQ_INT(r.has_seed, 1);
    CHECK_EQ_INT(r.n_stop, 1);
    CHECK_EQ_STR(r.stop[0], "\n");
    CHECK(r.stop[1] == NULL);
    CHECK_EQ_INT(r.n, 2);
    CHECK_EQ_INT(r.top_logprobs, 4);
    CHECK_EQ_INT(r.n_bias, 1);
    CHECK_EQ_INT(r.bias[0].id, 12);
    CHECK_EQ_INT(r.top_k, 40);
    CHECK_EQ_INT(r.stream, 1);
    CHECK_EQ_INT(r.include_usage, 1);
    oai_request_free(&r);
    /* nothing given: the server's defaults apply */
    CHECK_OK(parse(OAI_CHAT, "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}", &r, &e), &e);
    CHECK(r.temperature < 0 && r.top_p < 0 && r.top_k < 0 && r.max_tokens == 0 && r.n == 1 && !r.stream);
    oai_request_free(&r);
}

static void expect_bad(OaiKind kind, const char *body, const char *param) {
    OaiRequest r;
    Err e;
    CHECK_MSG(parse(kind, body, &r, &e) != 0, "accepted: %s", body);
    CHECK_EQ_STR(r.param, param);
    CHECK_MSG(strstr(e.msg, param) == e.msg || !strcmp(param, "body"), "the message does not start with %s: %s", param,
              e.msg);
    oai_request_free(&r);
}

static void test_bad_fields_named(void) {
    expect_bad(OAI_CHAT, "[1]", "body");
    expect_bad(OAI_CHAT, "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}]", "body");
    expect_bad(OAI_CHAT, "{\"messages\": []}", "model");
    expect_bad(OAI_CHAT, "{\"model\": \"m\", \"messages\": []}", "messages");
    expect_bad(OAI_CHAT, "{\"model\": \"m\", \"messages\": [{\"role\": \"robot\", \"content\": \"x\"}]}",
               "messages[0].role");
    expect_bad(OAI_CHAT, "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]}",
               "messages[0].content[0]");
    expect_bad(OAI_CHAT, "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"a\\u0000b\"}]}",
               "messages[0].content");
    const char *pre = "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}], ";
    const char *cases[][2] = {
        {"\"temperature\": -1}", "temperature"}, {"\"top_p\": 0}", "top_p"},
        {"\"max_tokens\": 0}", "max_tokens"},   {"\"n\": 17}", "n"},
        {"\"stop\": [\"a\", \"b\", \"c\", \"d\", \"e\"]}", "stop"}, {"\"stop\": [\"\"]}", "stop[0]"},
        {"\"logit_bias\": {\"x\": 1}}", "logit_bias.x"}, {"\"logit_bias\": {\"3\": 101}}", "logit_bias.3"},
        {"\"top_logprobs\": 3}", "top_logprobs"}, {"\"seed\": 1.5}", "seed"},
        {"\"stream\": 1}", "stream"}, {"\"stream_options\": {\"include_usage\": 1}}", "stream_options.include_usage"},
        {"\"presence_penalty\": 3}", "presence_penalty"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char body[512];
        snprintf(body, sizeof body, "%s%s", pre, cases[i][0]);
        expect_bad(OAI_CHAT, body, cases[i][1]);
    }
    expect_bad(OAI_COMPLETION, "{\"model\": \"m\"}", "prompt");
    expect_bad(OAI_COMPLETION, "{\"model\": \"m\", \"prompt\": [1, -2]}", "prompt[1]");
    expect_bad(OAI_COMPLETION, "{\"model\": \"m\", \"prompt\": \"x\", \"logprobs\": 6}", "logprobs");
    expect_bad(OAI_EMBEDDINGS, "{\"model\": \"m\", \"input\": [\"a\", 3]}", "input[1]");
    expect_bad(OAI_EMBEDDINGS, "{\"model\": \"m\", \"input\": \"a\", \"encoding_format\": \"hex\"}", "encoding_format");
}

static void test_completion_and_embedding_requests(void) {
    OaiRequest r;
    Err e;
    CHECK_OK(parse(OAI_COMPLETION, "{\"model\": \"m\", \"prompt\": [\"text\"], \"echo\": true, \"logprobs\": 2}", &r, &e), &e);
    CHECK_EQ_STR(r.prompt, "text");
    CHECK(r.echo && r.logprobs && r.top_logprobs == 2);
    oai_request_free(&r);
    CHECK_OK(parse(OAI_COMPLETION, "{\"model\": \"m\", \"prompt\": [5, 6]}", &r, &e), &e);
    CHECK(r.n_prompt_ids == 2 && r.prompt_ids[1] == 6 && !r.prompt);
    oai_request_free(&r);
    CHECK_OK(parse(OAI_EMBEDDINGS, "{\"model\": \"m\", \"input\": \"one\", \"encoding_format\": \"base64\"}", &r, &e), &e);
    CHECK(r.n_input == 1 && r.base64);
    oai_request_free(&r);
}

/* The client's request body is one the server's parser takes as meant. */
static void test_client_body_round_trip(void) {
    LlmMessage msgs[2] = {{"system", "S"}, {"user", "U"}};
    LlmParams p = llm_params_default();
    p.temperature = 0.25;
    p.max_tokens = 9;
    p.has_seed = 1;
    p.seed = 42;
    char *body = oai_chat_body("m", msgs, 2, &p);
    OaiRequest r;
    Err e;
    CHECK_OK(parse(OAI_CHAT, body, &r, &e), &e);
    CHECK(r.n_messages == 2 && !strcmp(r.messages[1].content, "U") && r.max_tokens == 9 && r.seed == 42);
    CHECK_NEAR(r.temperature, 0.25, 0);
    oai_request_free(&r);
    free(body);
    const char *texts[] = {"a", "b"};
    body = oai_embeddings_body("e", texts, 2);
    CHECK_OK(parse(OAI_EMBEDDINGS, body, &r, &e), &e);
    CHECK(r.n_input == 2 && !strcmp(r.input[1], "b"));
    oai_request_free(&r);
    free(body);
}

/* What the server writes, the client reads back. */
static void test_response_round_trip(void) {
    OaiUsage u = {10, 4, 6};
    json_t *choices = json_array();
    json_array_append_new(choices, oai_chat_choice(0, "hi \xff there", "length", NULL));
    json_t *j = oai_response(OAI_CHAT, "chatcmpl-1", "m", 5, choices, &u);
    OaiChatReply cr;
    Err e;
    CHECK_OK(oai_chat_reply(j, &cr, &e), &e);
    CHECK_EQ_STR(json_string_value(cr.content), "hi \xEF\xBF\xBD there"); /* not UTF-8: U+FFFD */
    CHECK_EQ_STR(json_string_value(cr.finish_reason), "length");
    CHECK(cr.usage.prompt_tokens == 10 && cr.usage.completion_tokens == 4 && cr.usage.cached_tokens == 6);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(j, "usage"), "total_tokens")), 14);
    json_decref(j);
    float v[2][3] = {{1, -2, 0.5f}, {0, 3, 4}};
    j = oai_embeddings("e", &v[0][0], 2, 3, 0, 7);
    float *vecs;
    int dim;
    CHECK_OK(oai_embeddings_reply(j, 2, &vecs, &dim, &e), &e);
    CHECK(dim == 3 && !memcmp(vecs, v, sizeof v));
    free(vecs);
    json_decref(j);
    j = oai_error("bad", "invalid_request_error", "temperature", NULL);
    CHECK_EQ_STR(json_string_value(oai_error_message(j)), "bad");
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(j, "error"), "param")), "temperature");
    json_decref(j);
    StrBuf b;
    sb_init(&b);
    j = oai_chunk(OAI_CHAT, "id", "m", 1, 0, "assistant", "x", NULL, NULL);
    oai_sse_event(&b, j);
    json_decref(j);
    CHECK(!strncmp(b.s, "data: {", 7) && !strcmp(b.s + b.len - 2, "\n\n") && !memchr(b.s, '\n', b.len - 2));
    sb_free(&b);
}

static void test_base64(void) {
    /* RFC 4648's test vectors */
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char *s = oai_base64(in[i], strlen(in[i]));
        CHECK_EQ_STR(s, out[i]);
        free(s);
    }
}

int main(void) {
    RUN(test_chat_request_fields);
    RUN(test_bad_fields_named);
    RUN(test_completion_and_embedding_requests);
    RUN(test_client_body_round_trip);
    RUN(test_response_round_trip);
    RUN(test_base64);
    return test_summary();
}
