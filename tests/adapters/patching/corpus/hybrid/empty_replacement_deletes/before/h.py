keep
# TODO remove
keep2
