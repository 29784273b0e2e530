def greet(name):
    print('hi', name)
    return name


def main():
    greet('x')
