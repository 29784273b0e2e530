import a
import b

X = 1
Y = 22
Z = 3
