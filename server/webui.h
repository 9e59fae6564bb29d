/* webui: the chat page at GET / (server/webui/chat.html, compiled into the binary). */
#ifndef SEEKD_WEBUI_H
#define SEEKD_WEBUI_H

#include "server/http.h"

/* GET or HEAD /: the page with its security and caching headers, or 304 when the client's
 * copy (If-None-Match) is current. */
int webui_serve(struct http_req *r);

#endif
