import os


def main():
    print('a')
    print('b')
