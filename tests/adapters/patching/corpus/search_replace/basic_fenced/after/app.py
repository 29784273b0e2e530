import os
import sys


def main():
    print('A')
    print('b')
