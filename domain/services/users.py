"""Use cases for users: registration, reading, editing, deactivation, the first admin."""

from __future__ import annotations

import re
import secrets

import msgspec

from domain.errors import InvalidInput, NotFound, PermissionDenied
from domain.identity import Principal, Role, User
from domain.ports.repositories import UserFilter
from domain.ports.security import PasswordHasher
from domain.ports.services import Clock, IdGenerator
from domain.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory
from domain.services.access import require_role, require_user, scoped_centre
from domain.services.auditing import Auditor
from domain.services.commands import changes_of
from domain.values import Id, Page

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,63}$")
MIN_PASSWORD_LENGTH = 12


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise InvalidInput("password must have at most 1024 characters")


def check_username(username: str) -> None:
    if not USERNAME.match(username):
        raise InvalidInput(
            f"username {username[:80]!r} must be 3-64 lower-case letters, digits, '.', '_' or '-'"
        )


def check_email(email: str) -> None:
    if not EMAIL.match(email):
        raise InvalidInput(f"email {email[:80]!r} is not a valid address")


class CreateUser(msgspec.Struct, frozen=True, kw_only=True):
    username: str
    email: str
    full_name: str
    role: Role
    password: str
    centre_id: Id | None = None


class UpdateUser(msgspec.Struct, frozen=True, kw_only=True):
    email: str | msgspec.UnsetType = msgspec.UNSET
    full_name: str | msgspec.UnsetType = msgspec.UNSET
    role: Role | msgspec.UnsetType = msgspec.UNSET
    password: str | msgspec.UnsetType = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET


_SELF_EDITABLE = {"email", "full_name", "password"}


class UserService:
    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        clock: Clock,
        ids: IdGenerator,
        hasher: PasswordHasher,
        auditor: Auditor,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._ids = ids
        self._hasher = hasher
        self._auditor = auditor

    async def create(self, principal: Principal, command: CreateUser) -> User:
        """Register a user. Admins register anyone; a centre manager registers staff of their
        own centre (never an admin)."""
        require_user(principal, action="register users")
        require_role(principal, Role.CENTRE_MANAGER, action="register users")
        centre_id = command.centre_id
        if not principal.is_admin:
            if command.role is Role.ADMIN:
                raise PermissionDenied("only an admin may register an admin")
            if centre_id is not None and centre_id != principal.centre_id:
                raise NotFound("centre", centre_id)
            centre_id = principal.centre_id
        check_username(command.username)
        check_email(command.email)
        check_password_policy(command.password)
        if command.role is Role.ADMIN:
            centre_id = None
        elif centre_id is None:
            raise InvalidInput(f"a {command.role.value} needs a centre_id")
        now = self._clock.now()
        user = User(
            id=self._ids.new_id(),
            username=command.username,
            email=command.email.lower(),
            full_name=command.full_name.strip() or command.username,
            role=command.role,
            centre_id=centre_id,
            password_hash=self._hasher.hash(command.password),
            created_at=now,
            updated_at=now,
        )
        async with self._uow() as uow:
            if centre_id is not None:
                centre = await uow.centres.get(centre_id)
                if centre is None or not centre.active:
                    raise NotFound("centre", centre_id)
            await uow.users.add(user)
            await uow.commit()
        await self._auditor.record(principal, "user.create", "user", user.id, centre_id=centre_id)
        return user

    async def _visible(self, uow: UnitOfWork, principal: Principal, user_id: Id) -> User:
        user = await uow.users.get(user_id)
        if user is None:
            raise NotFound("user", user_id)
        if principal.is_admin or user.id == principal.id:
            return user
        if user.centre_id is None or user.centre_id != principal.centre_id:
            raise NotFound("user", user_id)
        return user

    async def get(self, principal: Principal, user_id: Id) -> User:
        async with self._uow() as uow:
            return await self._visible(uow, principal, user_id)

    async def list(self, principal: Principal, where: UserFilter, page: Page) -> list[User]:
        centre = scoped_centre(principal, where.centre_id)
        async with self._uow() as uow:
            return await uow.users.list(msgspec.structs.replace(where, centre_id=centre), page)

    async def update(self, principal: Principal, user_id: Id, command: UpdateUser) -> User:
        changes = changes_of(command)
        async with self._uow() as uow:
            user = await self._visible(uow, principal, user_id)
            self._check_may_edit(principal, user, changes)
            if "email" in changes:
                check_email(str(changes["email"]))
                changes["email"] = str(changes["email"]).lower()
            if "password" in changes:
                password = str(changes.pop("password"))
                check_password_policy(password)
                changes["password_hash"] = self._hasher.hash(password)
            try:
                changed = msgspec.structs.replace(user, updated_at=self._clock.now(), **changes)
            except ValueError as err:  # e.g. a centre user made admin without leaving the centre
                raise InvalidInput(str(err)) from err
            stored = await uow.users.update(changed)
            await uow.commit()
        await self._auditor.record(
            principal, "user.update", "user", user_id, centre_id=user.centre_id
        )
        return stored

    def _check_may_edit(self, principal: Principal, user: User, changes: dict[str, object]) -> None:
        if principal.is_admin:
            return
        if user.id == principal.id and set(changes) <= _SELF_EDITABLE:
            return
        require_user(principal, action="edit users")
        require_role(principal, Role.CENTRE_MANAGER, action="edit other users")
        if user.role is Role.ADMIN or changes.get("role") is Role.ADMIN:
            raise PermissionDenied("only an admin may edit or grant the admin role")

    async def deactivate(self, principal: Principal, user_id: Id) -> User:
        if user_id == principal.id:
            raise InvalidInput("you cannot deactivate yourself")
        return await self.update(principal, user_id, UpdateUser(active=False))

    async def create_admin(self, *, username: str, email: str, password: str) -> User:
        """Create an admin from the command line (no principal: whoever runs the CLI owns it)."""
        check_username(username)
        check_email(email)
        check_password_policy(password)
        now = self._clock.now()
        user = User(
            id=self._ids.new_id(),
            username=username,
            email=email.lower(),
            full_name=username,
            role=Role.ADMIN,
            centre_id=None,
            password_hash=self._hasher.hash(password),
            created_at=now,
            updated_at=now,
        )
        async with self._uow() as uow:
            await uow.users.add(user)
            await uow.commit()
        return user

    async def ensure_initial_admin(self, *, username: str = "admin") -> str | None:
        """On a fresh installation, create an admin with a generated password and return that
        password (to be shown once). Return ``None`` when an active admin exists."""
        async with self._uow() as uow:
            admins = await uow.users.count(UserFilter(role=Role.ADMIN, active=True))
        if admins:
            return None
        password = secrets.token_urlsafe(18)
        await self.create_admin(
            username=username, email=f"{username}@localhost.localdomain", password=password
        )
        return password
