def f():
    if x:
        a(1)
        c()
        b()
