import os


class A:
    def f(self, x):
        y = x + 1
        return y


class B:
    def f(self, x):
        y = x + 1
        return y
