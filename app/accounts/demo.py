"""The demo institutions and accounts of the public contract, plus extra specialists."""

import sqlalchemy as sa

from app.accounts.models import User
from app.accounts.service import create_user, get_or_create_institution
from app.extensions import db
from app.orgs.demo import seed_consortium

DEMO_PASSWORD = "huizhen-demo"  # noqa: S105 - the documented demo password

INSTITUTIONS = {
    "county": ("云溪县人民医院", "county", "湖南省 云溪县"),
    "provincial": ("湖南省妇幼保健院", "provincial", "湖南省 长沙市"),
    "tertiary": ("湘江大学附属第一医院", "tertiary", "湖南省 长沙市"),
    "tertiary2": ("华中协和医院", "tertiary", "湖北省 武汉市"),
    "community": ("桃源社区卫生服务中心", "community", "湖南省 长沙市"),
    "platform": ("会诊平台运营中心", "provincial", "湖南省 长沙市"),
}

# (email, name, specialty, title, institution key, role)
ACCOUNTS = [
    ("gp@demo.huizhen", "李春梅", "general_practice", "主治医师", "county", "doctor"),
    ("gyn@demo.huizhen", "王静怡", "gynecology", "主任医师", "tertiary", "doctor"),
    ("radiology@demo.huizhen", "陈志远", "radiology", "副主任医师", "tertiary", "doctor"),
    ("pathology@demo.huizhen", "赵雪", "pathology", "主任医师", "tertiary", "doctor"),
    ("oncology@demo.huizhen", "刘建国", "oncology", "主任医师", "tertiary", "doctor"),
    ("outsider@demo.huizhen", "孙浩", "cardiology", "主治医师", "community", "doctor"),
    ("admin@demo.huizhen", "平台管理员", "general_practice", "", "platform", "admin"),
    # More specialists so that the directory is worth searching.
    ("gyn2@demo.huizhen", "周敏", "gynecology", "副主任医师", "provincial", "doctor"),
    ("gyn3@demo.huizhen", "吴丽华", "gynecology", "主任医师", "tertiary2", "doctor"),
    ("radiology2@demo.huizhen", "郑凯", "radiology", "主任医师", "tertiary2", "doctor"),
    ("radiology3@demo.huizhen", "黄晓明", "radiology", "主治医师", "provincial", "doctor"),
    ("pathology2@demo.huizhen", "何琳", "pathology", "副主任医师", "tertiary2", "doctor"),
    ("oncology2@demo.huizhen", "马骏", "oncology", "副主任医师", "tertiary2", "doctor"),
    ("cardiology@demo.huizhen", "林峰", "cardiology", "主任医师", "tertiary", "doctor"),
    ("neurology@demo.huizhen", "徐文", "neurology", "主任医师", "tertiary2", "doctor"),
    ("ultrasound@demo.huizhen", "高燕", "ultrasound", "副主任医师", "tertiary", "doctor"),
    # The demo consortium's triage coordinator and its administrator (app/orgs/demo.py).
    ("coordinator@demo.huizhen", "钱晓婷", "general_practice", "分诊护士长", "tertiary", "coordinator"),
    ("consortium@demo.huizhen", "医联体管理员", "general_practice", "", "tertiary", "doctor"),
]


def seed_demo() -> dict[str, int]:
    """Create the demo data that is missing; running it again changes nothing."""
    institutions = {
        key: get_or_create_institution(name=name, level=level, region=region)
        for key, (name, level, region) in INSTITUTIONS.items()
    }
    created = 0
    for email, name, specialty, title, inst_key, role in ACCOUNTS:
        if db.session.scalar(sa.select(User.id).where(User.email == email)) is not None:
            continue
        create_user(email=email, password=DEMO_PASSWORD, name=name, specialty=specialty,
                    title=title, institution=institutions[inst_key], role=role)
        created += 1
    orgs = seed_consortium()
    db.session.commit()
    return {"institutions": len(institutions), "users_created": created, "users": len(ACCOUNTS), **orgs}
