#!/bin/sh
# agent-log.sh LOGFILE AGENT-ARGV… — the agent command of a bench project that
# must count what a session moved: the CLI appends `serve --type …` to the
# agent argv, and --log-file belongs after it, so this runs the argv it is
# given with `--log-file LOGFILE` appended (exec: no extra process). The
# first line marks a session's start: the bench waits for as many "session
# ended" lines before it runs the next sync.
log=$1
shift
printf 'agent started\n' >>"$log"
exec "$@" --log-file "$log"
