class K:
    def run(self):
        if True:
            go()
        done()
