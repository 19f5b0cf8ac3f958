/* hub: model specs that name a Hugging Face repository.
 *
 *   hf://ORG/REPO[@REV][/PATH]
 *
 * is downloaded once into a local cache and then used like a local path:
 * a whole repository resolves to its snapshot directory (model files only:
 * config, tokenizer, safetensors; no pickles or other frameworks' weights),
 * and a single PATH (a .gguf file) resolves to that file. Downloads resume
 * where they stopped (HTTP Range), show progress, and are verified before
 * they are moved into place (see hub_parse_listing for what is checked).
 *
 * The cache follows the hub's own layout, so one laid out by other tools can
 * be reused: CACHE/models--ORG--REPO/{refs/REV, snapshots/COMMIT/...}.
 * HF_ENDPOINT and HF_TOKEN are honoured as the hub's own tools honour them;
 * the token is sent only to the endpoint and never logged. */
#ifndef ALOE_MODEL_HUB_H
#define ALOE_MODEL_HUB_H

#include <stddef.h>

#include "base/err.h"

typedef struct HubSpec {
    char *repo;     /* "ORG/REPO" */
    char *revision; /* "main" unless @REV */
    char *path;     /* file inside the repo, or NULL for the model files */
} HubSpec;

/* 1 if spec starts with hf:// */
int hub_is_spec(const char *spec);
int hub_parse_spec(const char *spec, HubSpec *out, Err *e);
void hub_spec_free(HubSpec *s);

typedef struct HubOptions {
    const char *endpoint;  /* NULL: $HF_ENDPOINT, then https://huggingface.co */
    const char *token;     /* NULL: $HF_TOKEN */
    const char *cache_dir; /* NULL: $ALOE_CACHE/hub, then ~/.cache/aloe/hub */
    int quiet;             /* no progress output */
    int max_attempts;      /* per file, resuming each time; <= 0: 5 */
} HubOptions;

/* Resolves a model spec to a local path (caller frees). A spec that is not
 * hf:// is returned unchanged. opts may be NULL. */
int hub_resolve(const char *spec, const HubOptions *opts, char **local_path, Err *e);

/* Whether a repository file is one aloe needs for a model directory. */
int hub_wanted_file(const char *rfilename);

/* ---- the repository listing ----
 *
 * GET ENDPOINT/api/models/ORG/REPO/revision/REV?blobs=true answers
 *   {"sha": COMMIT, "siblings": [{"rfilename": NAME, "size": N, "blobId": SHA1,
 *                                 "lfs": {"sha256": HEX, "size": N}}, ...]}
 * The endpoint may be hostile ($HF_ENDPOINT), so every name must be a plain
 * relative path before any of it touches the file system, and every file is
 * checked against the hash listed for it: LFS files by the SHA-256 of their
 * content (their blobId names the pointer file, not the content), other
 * files by their git blob id, SHA-1 of "blob SIZE\0" + content. */

typedef struct HubFile {
    char *name;       /* rfilename; passed hub_check_filename */
    long long size;   /* bytes, or -1 when the listing gives none */
    char sha256[65];  /* LFS content SHA-256 (lowercase hex), or "" */
    char blob_id[41]; /* git blob id of a non-LFS file (lowercase hex), or "" */
} HubFile;

typedef struct HubListing {
    char *commit; /* the commit REV resolved to ("sha") */
    HubFile *files;
    size_t n_files;
} HubListing;

/* Longest name accepted, and longest single path component (NAME_MAX). */
#define HUB_MAX_NAME 1024
#define HUB_MAX_COMPONENT 255

/* Parses a listing answer. Refuses the whole listing, naming the entry (its
 * index and its name with unprintable bytes escaped), when a name fails
 * hub_check_filename, is listed twice or is both a file and a directory,
 * when a hash is not hex of the right length, or when sizes disagree.
 * `origin` (the URL) prefixes messages. Free with hub_listing_free. */
int hub_parse_listing(const char *json, size_t len, const char *origin, HubListing *out, Err *e);
void hub_listing_free(HubListing *l);

/* Checks one listed name (len bytes, may hold NUL): a relative path of
 * non-empty components, none "." or "..", with no backslash, no control
 * character (NUL included), at most HUB_MAX_NAME bytes and components of
 * at most HUB_MAX_COMPONENT, and no component ending in ".incomplete" (the
 * cache's own partial downloads). 0 if acceptable, else -1 with e saying why. */
int hub_check_filename(const char *name, size_t len, Err *e);

#endif
