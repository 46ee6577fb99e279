"""The specialty codes doctors and cases use, with their Chinese and English names."""

SPECIALTIES: dict[str, tuple[str, str]] = {
    "general_practice": ("全科", "General practice"),
    "gynecology": ("妇科", "Gynecology"),
    "obstetrics": ("产科", "Obstetrics"),
    "radiology": ("放射科", "Radiology"),
    "pathology": ("病理科", "Pathology"),
    "oncology": ("肿瘤科", "Oncology"),
    "cardiology": ("心内科", "Cardiology"),
    "neurology": ("神经内科", "Neurology"),
    "respiratory": ("呼吸科", "Respiratory medicine"),
    "gastroenterology": ("消化科", "Gastroenterology"),
    "orthopedics": ("骨科", "Orthopedics"),
    "pediatrics": ("儿科", "Pediatrics"),
    "surgery": ("普外科", "General surgery"),
    "ultrasound": ("超声科", "Ultrasound"),
}

INSTITUTION_LEVELS: dict[str, tuple[str, str]] = {
    "tertiary": ("三级医院", "Tertiary hospital"),
    "provincial": ("省级医院", "Provincial hospital"),
    "county": ("县级医院", "County hospital"),
    "community": ("社区卫生服务中心", "Community health centre"),
}

# How much a hospital's level counts when ranking specialists for a referral.
LEVEL_RANK = {"tertiary": 3, "provincial": 2, "county": 1, "community": 0}


def specialty_names(code: str) -> dict[str, str]:
    """Return {"zh", "en"} display names for a specialty code (the code itself if unknown)."""
    zh, en = SPECIALTIES.get(code, (code, code))
    return {"zh": zh, "en": en}
