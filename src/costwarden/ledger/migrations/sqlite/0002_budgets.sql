-- Budgets managed at run time (admin API / CLI), on top of those in the config file.
-- Every replica reads this table on an interval, so a change reaches all of them.
-- rule is the BudgetRule as JSON without its name (the name is the key); limit_usd is a JSON
-- string holding the exact decimal, never a float.
CREATE TABLE policy_budgets (
    name       TEXT PRIMARY KEY,
    rule       TEXT NOT NULL,  -- JSON object
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
