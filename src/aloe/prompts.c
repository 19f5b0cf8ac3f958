#include "aloe/prompts.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"

typedef struct {
    const char *key;
    const char *placeholders;
    const char *text;
} PromptDef;

/* Defaults. Design notes:
 * - The user simulator reveals only a little of the persona per turn, so that
 *   adapting over turns is measurable (the point of the benchmark).
 * - The inducer is told to be conservative: inventing traits the user never
 *   showed would make the "hinted" responder worse, not better.
 * - Judges must end with a machine-readable line; replies without one are
 *   re-asked with PROMPT_JUDGE_REMINDER, never guessed. */
static const PromptDef defs[PROMPT__COUNT] = { /* the rubric protocol */
    [PROMPT_USER_SIMULATOR] = {
        "user_simulator", "{profile} {personality}",
        "You are role-playing a real person chatting with an AI assistant. Stay in character for the "
        "whole conversation.\n\n"
        "Who you are (your profile):\n{profile}\n\n"
        "How you are (your personality):\n{personality}\n\n"
        "Rules:\n"
        "- Talk the way this person would talk to a friend: natural, casual, in your own voice. Let your "
        "personality show in how you write, not by describing it.\n"
        "- Reveal only a small part of your profile in each message, and only when it fits the "
        "conversation. Never list facts about yourself, and never state your personality traits.\n"
        "- Keep each message short: one to three sentences.\n"
        "- React to what the assistant just said: follow up, push back, or move the topic along as this "
        "person would.\n"
        "- Write only your next message, with no name, label or quotation marks, and never mention that "
        "you are role-playing."},
    [PROMPT_USER_FIRST_TURN] = {
        "user_first_turn", "",
        "Start the conversation: write your first message to the assistant, about something this person "
        "would plausibly want to talk about or ask for help with."},
    [PROMPT_USER_REPLY_SUFFIX] = {"user_reply_suffix", "", ""},
    [PROMPT_INDUCER] = {
        "inducer", "{profile} {personality} {conversation}",
        "Below is a conversation between a user and an AI assistant.\n\n{conversation}\n\n"
        "From the user's own words only, infer what can be known about the user. Be conservative: include "
        "only what the user's messages state or clearly imply, and nothing you would have to guess. If "
        "nothing is revealed yet for a part, write \"unknown\".\n\n"
        "Answer in exactly this form:\n"
        "Profile: <the user's background, circumstances, interests and facts about their life>\n"
        "Personality: <the user's traits and communication style as shown by how they write>"},
    [PROMPT_RESPONDER_HINTED] = {
        "responder_hinted", "{inferred_profile} {inferred_personality}",
        "You are a helpful assistant having a conversation with a user. From the conversation so far, "
        "this is what is known about the user:\n"
        "Profile: {inferred_profile}\n"
        "Personality: {inferred_personality}\n\n"
        "Tailor your reply to this user: choose content that fits their situation and interests, and a "
        "tone and style that suit their personality. Do not mention that you have inferred anything "
        "about them. Reply like a person would in a chat: natural, warm and concise, at most three "
        "sentences."},
    [PROMPT_RESPONDER_PLAIN] = {
        "responder_plain", "",
        "You are a helpful assistant having a conversation with a user. Reply like a person would in a "
        "chat: natural, warm and concise, at most three sentences."},
    [PROMPT_RESPONDER_HINT] = {"responder_hint", "{inferred_profile} {inferred_personality}", ""},
    [PROMPT_RESPONDER_SUFFIX] = {"responder_suffix", "", ""},
    [PROMPT_EVALUATED] = {
        "evaluated", "",
        "You are a helpful assistant having a conversation with a user. Reply like a person would in a "
        "chat: natural and concise, at most three sentences."},
    [PROMPT_JUDGE_PAIR] = {
        "judge_pair", "{profile} {personality} {conversation} {reply_a} {reply_b}",
        "You are judging which assistant reply a particular user would prefer.\n\n"
        "The user's profile:\n{profile}\n\n"
        "The user's personality:\n{personality}\n\n"
        "The conversation so far:\n{conversation}\n\n"
        "Reply A:\n{reply_a}\n\n"
        "Reply B:\n{reply_b}\n\n"
        "Which reply would this user prefer? Consider whether its style suits their personality, whether "
        "its content suits their profile, and whether it sounds human and concise. Explain briefly, then "
        "end with a last line of exactly \"Preferred: A\" or \"Preferred: B\"."},
    [PROMPT_JUDGE_SCORE] = {
        "judge_score", "{profile} {personality} {user_message} {reply}",
        "You are judging how well an assistant's reply is tailored to a particular user.\n\n"
        "The user's profile:\n{profile}\n\n"
        "The user's personality:\n{personality}\n\n"
        "The user's message:\n{user_message}\n\n"
        "The assistant's reply:\n{reply}\n\n"
        "Rate the reply from 1 to 5:\n"
        "5 - its style clearly fits the personality, its content fits the profile, and it is human-like "
        "and concise;\n"
        "4 - well tailored with small lapses;\n"
        "3 - partly tailored, or generic but appropriate;\n"
        "2 - mostly generic, or a poor fit in style or content;\n"
        "1 - not tailored at all, or unfit for this user.\n"
        "Explain briefly, then end with a last line of exactly \"Score: N\" where N is 1, 2, 3, 4 or 5."},
    [PROMPT_JUDGE_REMINDER] = {
        "judge_reminder", "",
        "Your answer did not end with the required last line. Answer again, ending with a last line of "
        "exactly the required form."},
    [PROMPT_GENERATE_PROFILE] = {
        "generate_profile", "{examples} {n}",
        "Here are some descriptions of people's profiles (objective facts: age, work, family, education, "
        "hobbies, where and how they live):\n\n{examples}\n\n"
        "Write {n} new profiles in the same style and length, each about a different person. Make them "
        "diverse: vary age, gender, occupation, background, family situation and interests, and do not "
        "repeat the people above. Write one profile per line, numbered \"1. \", \"2. \" and so on, with "
        "nothing else."},
    [PROMPT_GENERATE_PERSONALITY] = {
        "generate_personality", "{examples} {n}",
        "Here are some descriptions of people's personalities (traits and how they show in behaviour):"
        "\n\n{examples}\n\n"
        "Write {n} new personality descriptions in the same style and length. Make them diverse: combine "
        "different traits, including less flattering ones, and do not repeat the ones above. Write one "
        "description per line, numbered \"1. \", \"2. \" and so on, with nothing else."},
};

/* The paper protocol's texts (NULL: the rubric's text): the instructions
 * of the reference run (data_generation.py, eval_own.py) in our own words.
 * "" marks a message the paper does not send (no system prompts; the user
 * simulator's instructions are its first user message). The inducer's two
 * worked examples are written for aloe: one reveals no personality trait,
 * so that "None" is shown as an answer. */
static const char *const paper_text[PROMPT__COUNT] = {
    /* ---- conversation roles ---- */
    [PROMPT_USER_SIMULATOR] =
        "You are going to play a person chatting with a chatbot. This is the person:\n"
        "Profile: {profile}\n"
        "Personality: {personality}\n"
        "Refer to yourself with the pronouns the profile uses, and ignore any pronouns in the "
        "personality description.\n"
        "Follow these rules:\n"
        "1. Choose what to talk about from the profile, and let the personality decide how you talk.\n"
        "2. Important: reveal only a small part of your profile in each message, never everything at "
        "once.\n"
        "3. You are chatting with a friend, not a robot or an assistant, so do not keep asking for "
        "advice or recommendations.\n"
        "4. Write only your message itself, with no analysis or comment on how you are playing the "
        "person.\n"
        "Now start the conversation with the chatbot however you like. Keep every message short, and "
        "write the way a real person writes, since that is who you are playing.",
    [PROMPT_USER_FIRST_TURN] = "",
    [PROMPT_USER_REPLY_SUFFIX] =
        "(Answer me in very concise, human-like language, within 3 sentences.)",
    [PROMPT_INDUCER] =
        "You will read a conversation in which A is the user and B is the one A is talking to, together "
        "with the user's full profile and personality. Find out which parts of that profile and "
        "personality A has revealed in the conversation so far.\n"
        "Rules:\n"
        "- Use only what A says; B's messages reveal nothing about A.\n"
        "- Be conservative: keep only what A's own words make obvious.\n"
        "- Copy the revealed parts in the words of the profile and personality given, without rephrasing "
        "them, and add nothing that is not in them.\n"
        "- Write None for a part of which nothing has been revealed.\n"
        "- If A's gender is not clear from the conversation, write He/She.\n"
        "- Give no analysis. Answer with exactly these two lines:\n"
        "Profile: <the revealed parts of the profile>\n"
        "Personalities: <the revealed personality traits>\n"
        "\n"
        "Example 1\n"
        "The user's profile: She is a 34-year-old veterinary nurse in Bristol. She keeps two rescue "
        "greyhounds, runs half-marathons and is saving up to buy a narrowboat. She grew up on a farm in "
        "Devon.\n"
        "The user's personality: She is practical and plain-spoken and gets straight to the point. She "
        "has little patience for small talk. She is fiercely loyal to her friends and has a dry sense of "
        "humour.\n"
        "The conversation:\n"
        "A: Just home from my shift. Being a veterinary nurse means three dogs in surgery before lunch, "
        "and my feet have had it.\n"
        "Answer:\n"
        "Profile: He/She is a veterinary nurse.\n"
        "Personalities: None\n"
        "\n"
        "Example 2\n"
        "The user's profile: He is a 61-year-old retired bus driver from Glasgow. He restores old radios "
        "in his shed, sings in a church choir and looks after his granddaughter on weekdays. He is "
        "learning Italian for a trip to Naples.\n"
        "The user's personality: He is warm and talkative and loves telling long stories. He is a bit "
        "stubborn and set in his ways. He is patient with children and quick to laugh at himself.\n"
        "The conversation:\n"
        "A: Thirty years I drove buses round Glasgow, and now my wee granddaughter runs me more ragged "
        "than any rush hour! Serves me right for thinking retirement meant a rest, ha.\n"
        "B: Ha, sounds like a busy retirement! Do you have her often?\n"
        "A: Every weekday while her mum's at work. Cannae complain, mind, though I still say a nap at "
        "two o'clock should be the law.\n"
        "Answer:\n"
        "Profile: He/She is a retired bus driver from Glasgow. He/She looks after his/her granddaughter "
        "on weekdays.\n"
        "Personalities: He/She is quick to laugh at himself/herself.\n"
        "\n"
        "Now the real one.\n"
        "The user's profile: {profile}\n"
        "The user's personality: {personality}\n"
        "The conversation:\n"
        "{conversation}\n"
        "Answer:",
    [PROMPT_RESPONDER_HINTED] = "",
    [PROMPT_RESPONDER_PLAIN] = "",
    [PROMPT_RESPONDER_HINT] =
        "(Hint: from the conversation so far, this is what is known about the user:\n"
        "Profile: {inferred_profile}\n"
        "Personalities: {inferred_personality}\n"
        "From it, work out for yourself what the user is likely to prefer: the topics to talk about, the "
        "conversational style, and the way they like to be answered. Reply directly with a message "
        "tailored to those preferences, without mentioning their profile or that you inferred anything.)",
    [PROMPT_RESPONDER_SUFFIX] =
        "(We are role-playing, so answer me in very concise, human-like language, within 3 sentences.)",
    [PROMPT_EVALUATED] = "",
    [PROMPT_JUDGE_PAIR] =
        "You will see a user's profile and personality and two messages sent to this user. Decide which "
        "of the two messages this user would prefer, given their profile and personality.\n"
        "The user's profile: {profile}\n"
        "The user's personality: {personality}\n"
        "\n"
        "The two messages:\n"
        "Message 1: {reply_a}\n"
        "Message 2: {reply_b}\n"
        "\n"
        "Do not explain your choice. If the user would prefer Message 1, answer with only the word "
        "first; if Message 2, answer with only the word second.",
    [PROMPT_JUDGE_SCORE] =
        "You will see a user's profile and personality, a message the user sent to a chatbot, and the "
        "chatbot's response. Judge how well the response is tailored to what this user is likely to "
        "prefer, given their profile and personality.\n"
        "The user's profile: {profile}\n"
        "The user's personality: {personality}\n"
        "The user's message: {user_message}\n"
        "The chatbot's response: {reply}\n"
        "\n"
        "Judge by these criteria:\n"
        "1. Does the conversational style of the response suit the user's personality?\n"
        "2. Are its content and topic relevant to the user's profile?\n"
        "3. Is it human-like, engaging and concise?\n"
        "Score the response from 1 to 5, where 1 means the least tailored to this user and 5 the most. "
        "Do not explain how you scored it: answer with only the score, a single number from 1 to 5.",
    [PROMPT_JUDGE_REMINDER] =
        "Your answer could not be read. Answer again with only what was asked for above (the single word "
        "or the single number) and nothing else.",

    /* ---- persona pool growth (aloe personas) ---- */


    [PROMPT_GENERATE_PROFILE] =
        "Write {n} new user profiles. Each profile describes one person, in the third person (\"He is ...\" "
        "or \"She is ...\"), through about 8 to 10 distinct facts about their everyday life. Possible facts "
        "include their age range, family, where and how they live, education, hobbies, habits and fun "
        "facts; use any combination (no profile needs all of these) and think of other kinds of facts "
        "too. Choose facts that could come up naturally in a casual, everyday conversation. Keep to "
        "objective facts about the person: say little about the content of their work, and nothing at "
        "all about their personality or character traits.\n\n"
        "Some example profiles:\n\n{examples}\n\n"
        "Make the {n} profiles diverse and different from each other and from the examples: vary the "
        "people and the kinds of facts, rather than describing the same topics every time. Answer in "
        "plain text with the profiles only, separated by a blank line, without numbers, titles or any "
        "other text.",


    [PROMPT_GENERATE_PERSONALITY] =
        "Write {n} new descriptions of a person's personality. Each description is about one person, in "
        "the third person (\"He is ...\" or \"She is ...\"), and names about 8 to 10 personality traits "
        "that would show in a casual, everyday conversation with them. Describe traits only: nothing "
        "beyond them, such as occupation, age, family, hobbies or where they live.\n\n"
        "Some example descriptions:\n\n{examples}\n\n"
        "Make the {n} descriptions diverse and different from each other and from the examples: avoid "
        "similar combinations of traits. Answer in plain text with the descriptions only, separated by a "
        "blank line, without numbers, titles or any other text.",
};

static const char *const protocol_names[PROTOCOL__COUNT] = {"paper", "rubric"};

const char *protocol_name(Protocol p) { return p >= 0 && p < PROTOCOL__COUNT ? protocol_names[p] : "?"; }

int protocol_parse(const char *s, Protocol *p, Err *e) {
    for (int i = 0; i < PROTOCOL__COUNT; i++)
        if (s && !strcmp(s, protocol_names[i])) {
            *p = (Protocol)i;
            return 0;
        }
    return err_set(e, ERR_ARG, "--protocol: expected paper or rubric, got \"%s\"", s ? s : "");
}

const char *prompt_key(PromptId id) { return defs[id].key; }
const char *prompt_placeholders(PromptId id) { return defs[id].placeholders; }

void prompts_init(Prompts *p, Protocol proto) {
    for (int i = 0; i < PROMPT__COUNT; i++)
        p->text[i] = xstrdup(proto == PROTOCOL_PAPER && paper_text[i] ? paper_text[i] : defs[i].text);
}

void prompts_free(Prompts *p) {
    for (int i = 0; i < PROMPT__COUNT; i++) {
        free(p->text[i]);
        p->text[i] = NULL;
    }
}

/* Checks that every {name} in text is one of the prompt's placeholders. */
static int check_placeholders(PromptId id, const char *text, const char *path, Err *e) {
    const char *allowed = defs[id].placeholders;
    for (const char *s = text; *s; s++) {
        if (s[0] == '{' && s[1] == '{') {
            s++;
            continue;
        }
        if (*s != '{') continue;
        const char *end = strchr(s, '}');
        if (!end) break;
        char name[64];
        size_t n = (size_t)(end - s + 1);
        if (n >= sizeof name) continue;
        memcpy(name, s, n);
        name[n] = 0;
        if (!strstr(allowed, name))
            return err_set(e, ERR_PARSE, "%s: prompt \"%s\" uses %s; it can use: %s", path, defs[id].key, name,
                           *allowed ? allowed : "no placeholders");
        s = end;
    }
    return 0;
}

int prompts_load(Prompts *p, const char *path, Err *e) {
    json_error_t jerr;
    errno = 0;
    json_t *root = json_load_file(path, 0, &jerr);
    int open_errno = errno;
    if (!root && jerr.line < 1) /* not a parse error: the file could not be opened */
        return err_set(e, file_exists(path) ? ERR_IO : ERR_NOTFOUND, "%s: cannot read the prompts file (%s)", path,
                       open_errno ? strerror(open_errno) : "unreadable");
    if (!root) return err_set(e, ERR_PARSE, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return err_set(e, ERR_PARSE, "%s: expected a JSON object of prompt texts", path);
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        int id = -1;
        for (int i = 0; i < PROMPT__COUNT; i++)
            if (!strcmp(defs[i].key, key)) id = i;
        if (id < 0) {
            StrBuf known;
            sb_init(&known);
            for (int i = 0; i < PROMPT__COUNT; i++) sb_printf(&known, "%s%s", i ? ", " : "", defs[i].key);
            err_set(e, ERR_PARSE, "%s: unknown prompt \"%s\" (known: %s)", path, key, known.s);
            sb_free(&known);
            json_decref(root);
            return -1;
        }
        if (!json_is_string(v)) {
            json_decref(root);
            return err_set(e, ERR_PARSE, "%s: prompt \"%s\": expected a string", path, key);
        }
        if (check_placeholders(id, json_string_value(v), path, e)) {
            json_decref(root);
            return -1;
        }
        free(p->text[id]);
        p->text[id] = xstrdup(json_string_value(v));
    }
    json_decref(root);
    return 0;
}

char *prompt_fill(const char *tmpl, const char *const *vars) {
    StrBuf b;
    sb_init(&b);
    for (const char *s = tmpl; *s;) {
        if ((s[0] == '{' && s[1] == '{') || (s[0] == '}' && s[1] == '}')) {
            sb_appendc(&b, s[0]);
            s += 2;
            continue;
        }
        if (*s == '{') {
            const char *end = strchr(s, '}');
            const char *val = NULL;
            if (end)
                for (int i = 0; vars && vars[i]; i += 2)
                    if (strlen(vars[i]) == (size_t)(end - s - 1) && !strncmp(vars[i], s + 1, (size_t)(end - s - 1)))
                        val = vars[i + 1];
            if (val) {
                sb_append(&b, val);
                s = end + 1;
                continue;
            }
        }
        sb_appendc(&b, *s++);
    }
    return sb_take(&b);
}
