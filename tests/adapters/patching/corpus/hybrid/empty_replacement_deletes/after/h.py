keep
keep2
