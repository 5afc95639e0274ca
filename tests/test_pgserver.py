import sys
def test_x():
    import tests.conftest as a
    print({k: v for k, v in sys.modules.items() if "conftest" in k})
    print(__name__)
