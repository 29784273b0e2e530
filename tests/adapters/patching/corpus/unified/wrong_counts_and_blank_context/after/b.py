def f():

    return 2


def g():
    pass
