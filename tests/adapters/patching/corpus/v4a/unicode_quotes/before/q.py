msg = "it's fine"
print(msg)  # a - b
