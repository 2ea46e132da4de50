"""A small world of centres and users on in-memory adapters, for use-case tests."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from adapters.memory import MemoryAuditLog, MemoryDatabase
from adapters.memory.clock import ManualClock
from adapters.memory.rate_limits import MemoryRateLimiter
from adapters.security import Argon2PasswordHasher, JwtTokenService, Sha256ApiKeySecrets
from adapters.system import UuidIdGenerator
from domain.identity import Principal, PrincipalKind, Role, User
from domain.services.api_keys import ApiKeyService
from domain.services.auditing import Auditor
from domain.services.auth import AuthService
from domain.services.centres import CentreService, CreateCentre
from domain.services.users import CreateUser, UserService

PASSWORD = "correct horse battery staple"


def principal_of(user: User) -> Principal:
    return Principal(
        kind=PrincipalKind.USER,
        id=user.id,
        role=user.role,
        centre_id=user.centre_id,
        display=user.username,
    )


@dataclass
class World:
    db: MemoryDatabase
    audit: MemoryAuditLog
    clock: ManualClock
    limiter: MemoryRateLimiter
    hasher: Argon2PasswordHasher
    auditor: Auditor
    centres: CentreService
    users: UserService
    auth: AuthService
    keys: ApiKeyService
    admin: Principal
    centre_a: UUID
    centre_b: UUID
    people: dict[str, User]

    def as_(self, name: str) -> Principal:
        return principal_of(self.people[name])


async def build_world() -> World:
    db, audit, clock, ids = MemoryDatabase(), MemoryAuditLog(), ManualClock(), UuidIdGenerator()
    hasher = Argon2PasswordHasher.for_tests()
    auditor = Auditor(log=audit, clock=clock, ids=ids)
    centres = CentreService(uow=db.unit_of_work, clock=clock, ids=ids, auditor=auditor)
    users = UserService(uow=db.unit_of_work, clock=clock, ids=ids, hasher=hasher, auditor=auditor)
    root = await users.create_admin(username="root", email="root@example.org", password=PASSWORD)
    admin = principal_of(root)
    a = await centres.create(admin, CreateCentre(name="Alpha Imaging"))
    b = await centres.create(admin, CreateCentre(name="Beta Diagnostics"))
    people = {"root": root}
    for centre, tag in ((a.id, "a"), (b.id, "b")):
        for role in (Role.CENTRE_MANAGER, Role.RADIOLOGIST, Role.TECHNICIAN):
            name = f"{role.value.split('_')[-1]}-{tag}"
            people[name] = await users.create(
                admin,
                CreateUser(
                    username=name,
                    email=f"{name}@example.org",
                    full_name=name.title(),
                    role=role,
                    password=PASSWORD,
                    centre_id=centre,
                ),
            )
    limiter = MemoryRateLimiter(clock=clock)
    tokens = JwtTokenService(
        issuer="hounsfield-test", audience="hounsfield-api", secret=b"s" * 32, clock=clock
    )
    key_secrets = Sha256ApiKeySecrets()
    auth = AuthService(
        uow=db.unit_of_work,
        clock=clock,
        hasher=hasher,
        tokens=tokens,
        key_secrets=key_secrets,
        limiter=limiter,
        auditor=auditor,
    )
    keys = ApiKeyService(
        uow=db.unit_of_work, clock=clock, ids=ids, secrets=key_secrets, auditor=auditor
    )
    return World(
        db=db,
        audit=audit,
        clock=clock,
        limiter=limiter,
        hasher=hasher,
        auditor=auditor,
        centres=centres,
        users=users,
        auth=auth,
        keys=keys,
        admin=admin,
        centre_a=a.id,
        centre_b=b.id,
        people=people,
    )
