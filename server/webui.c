/* webui: serves the chat page. server/webui/embed.sh turns server/webui/chat.html into a C array
 * at build time, with the SHA-256 of its one inline <script> and one inline <style>, so the
 * Content-Security-Policy can allow exactly those two and nothing else:
 *  - no other script or style, no inline event handlers, nothing fetched but this server's API;
 *  - Trusted Types with no policy: the page cannot assign a string to innerHTML or any other
 *    HTML sink, so model output can only ever become text;
 *  - no framing, no forms, no <base>.
 * The page is cached but revalidated on every load (ETag = hash of the page), so a new binary's
 * page is picked up at once and an unchanged one costs a 304. */
#include "server/webui.h"

#include <string.h>

#include "build/gen/webui_page.h"

static const char csp[] =
    "default-src 'none'; script-src '" WEBUI_SCRIPT_HASH "'; style-src '" WEBUI_STYLE_HASH "'; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

/* If-None-Match holds "*" or a list of (possibly weak, W/) entity tags; ours is quoted, so
 * finding it whole in the list is an exact match of one entry. */
static int client_has_page(const char *if_none_match)
{
    if (!if_none_match) return 0;
    return strcmp(if_none_match, "*") == 0 || strstr(if_none_match, WEBUI_ETAG) != NULL;
}

int webui_serve(struct http_req *r)
{
    http_set_header(r, "Content-Security-Policy", csp);
    http_set_header(r, "X-Content-Type-Options", "nosniff");
    http_set_header(r, "Referrer-Policy", "no-referrer");
    http_set_header(r, "Cache-Control", "no-cache");
    http_set_header(r, "ETag", WEBUI_ETAG);
    if (client_has_page(http_header(r, "If-None-Match"))) return http_reply(r, 304, NULL, "", 0);
    return http_reply(r, 200, "text/html; charset=utf-8", (const char *)webui_page,
                      sizeof webui_page);
}
