#!/bin/sh
# embed.sh PAGE: writes to stdout a C header holding PAGE's bytes (webui_page[]), the CSP source
# expressions of its inline script and style (WEBUI_SCRIPT_HASH, WEBUI_STYLE_HASH: 'sha256-'
# and the base64 SHA-256 of the element's text, as browsers compute it) and an ETag.
#
# PAGE must hold exactly one <script> and one <style> element, each opening and closing tag
# alone on its line, so that the element's text is exactly the lines between them.
set -eu
page=$1

# The text of element $1: the newline after the opening tag, then each line with its newline.
element_text() {
    printf '\n'
    sed -n "/^<$1>\$/,/^<\/$1>\$/p" "$page" | sed '1d;$d'
}

csp_hash() {
    for tag in "<$1>" "</$1>"; do
        if [ "$(grep -c -x -F "$tag" "$page")" != 1 ]; then
            echo "$page: needs exactly one line '$tag' (the CSP hash covers that element)" >&2
            exit 1
        fi
    done
    printf "sha256-%s" "$(element_text "$1" | sha256sum | cut -c1-64 | xxd -r -p | base64 -w0)"
}

script=$(csp_hash script)
style=$(csp_hash style)
etag=$(sha256sum "$page" | cut -c1-16)
echo "/* Generated from $page by $0; do not edit. */"
echo "static const unsigned char webui_page[] = {"
xxd -i < "$page"
echo "};"
echo "#define WEBUI_SCRIPT_HASH \"$script\""
echo "#define WEBUI_STYLE_HASH \"$style\""
echo "#define WEBUI_ETAG \"\\\"$etag\\\"\""
