#!/bin/sh
# Container entrypoint: render the Alertmanager config from the template with
# the Telegram token and chat id from the environment, check it, start.
set -eu

: "${TELEGRAM_BOT_TOKEN:?set TELEGRAM_BOT_TOKEN to the bot token from @BotFather}"
: "${TELEGRAM_CHAT_ID:?set TELEGRAM_CHAT_ID to the numeric id of the alert chat}"
template="${ALERTMANAGER_TEMPLATE:-/etc/alertmanager/alertmanager.yml.tmpl}"
config="${ALERTMANAGER_CONFIG:-/tmp/alertmanager.yml}"
# Debian names the binary prometheus-alertmanager; the official image, alertmanager.

# Only these two variables are substituted; anything else with a dollar sign
# (Go templates in the config) is left alone.
# shellcheck disable=SC2016 # the single quotes name the variables for envsubst
envsubst '${TELEGRAM_BOT_TOKEN} ${TELEGRAM_CHAT_ID}' <"$template" >"$config"
amtool check-config "$config"
exec "${ALERTMANAGER_BIN:-alertmanager}" --config.file="$config" "$@"
