class K:
    def run(self):
        if True:
            go(fast=True)
            log()
        done()
