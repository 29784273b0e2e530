import a
import b

X = 1
Y = 2
Z = 3
