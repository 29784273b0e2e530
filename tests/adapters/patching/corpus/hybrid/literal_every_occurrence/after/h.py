baz(1)
baz(2)
bar(foo)
