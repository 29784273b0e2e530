msg = "it is fine"
print(msg)  # a - b
