foo(1)
foo(2)
bar(foo)
