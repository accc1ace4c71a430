#!/bin/sh
# A CGI script: yun runs it once per request (process function, stdio mode).
#
# Deploy:  yun deploy shell examples/shell-stdio --runtime process --mode stdio --command "sh handler.sh"
#
# The request arrives in CGI variables and on stdin; the optional header block, a blank line and
# the body go to stdout. Query `fail=N` exits with code N (yun answers 500); `status=N` sets
# the status.
case "$QUERY_STRING" in
  *fail=*) code=${QUERY_STRING##*fail=}; code=${code%%&*}; echo "failing with $code" >&2; exit "$code" ;;
esac
status=200
case "$QUERY_STRING" in
  *status=*) status=${QUERY_STRING##*status=}; status=${status%%&*} ;;
esac
body=$(cat)
echo "handled $REQUEST_METHOD $PATH_INFO" >&2
printf 'Status: %s\r\n' "$status"
printf 'Content-Type: text/plain\r\n'
printf 'X-Script: shell\r\n'
printf '\r\n'
printf 'method=%s path=%s query=%s\n' "$REQUEST_METHOD" "$PATH_INFO" "$QUERY_STRING"
printf 'content_type=%s content_length=%s\n' "$CONTENT_TYPE" "$CONTENT_LENGTH"
printf 'user_agent=%s\n' "$HTTP_USER_AGENT"
printf 'body=%s\n' "$body"
printf 'traceparent=%s\n' "$TRACEPARENT"
