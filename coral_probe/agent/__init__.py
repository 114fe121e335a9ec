"""The agent: SDK server for scripts, shared probe subscriptions, the Deno
executor. `coral run`, `coral probe attach --script` and `coral agent` run
one in-process."""
