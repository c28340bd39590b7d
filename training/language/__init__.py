"""Language rules over first-person facts: rephrasings and the questions a fact answers."""
