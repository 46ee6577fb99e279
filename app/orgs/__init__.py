"""Organizations: departments, doctor groups (pools) and consortia (医联体), with triage routing."""
