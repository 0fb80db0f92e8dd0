from autorl_gym.tasks.answers import extract_flexible, extract_strict, reference_answer


def test_strict_takes_first_marker_and_normalises():
    assert extract_strict("12 + 7 = 19\n#### 19") == "19"
    assert extract_strict("#### 1,234.\n#### 5") == "1234"
    assert extract_strict("#### -3") == "-3"
    assert extract_strict("the answer is 19") is None


def test_flexible_takes_last_number():
    assert extract_flexible("12 + 7 = 19 so 20") == "20"
    assert extract_flexible("costs $1,200.") == "1200"
    assert extract_flexible("none") is None


def test_reference_answer():
    assert reference_answer("a\n#### 72") == "72"
    import pytest

    with pytest.raises(ValueError):
        reference_answer("no marker")
