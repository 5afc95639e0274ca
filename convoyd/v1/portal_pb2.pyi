import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PortalLinkKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PORTAL_LINK_KIND_UNSPECIFIED: _ClassVar[PortalLinkKind]
    PORTAL_LINK_KIND_ONE_TIME: _ClassVar[PortalLinkKind]
    PORTAL_LINK_KIND_LONG_LIVED: _ClassVar[PortalLinkKind]
PORTAL_LINK_KIND_UNSPECIFIED: PortalLinkKind
PORTAL_LINK_KIND_ONE_TIME: PortalLinkKind
PORTAL_LINK_KIND_LONG_LIVED: PortalLinkKind

class PortalLink(_message.Message):
    __slots__ = ("id", "name", "owner_id", "endpoint_ids", "all_owners", "can_manage_endpoints", "kind", "created_at", "expires_at", "revoked_at", "used_at", "url")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_IDS_FIELD_NUMBER: _ClassVar[int]
    ALL_OWNERS_FIELD_NUMBER: _ClassVar[int]
    CAN_MANAGE_ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    USED_AT_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    owner_id: str
    endpoint_ids: _containers.RepeatedScalarFieldContainer[str]
    all_owners: bool
    can_manage_endpoints: bool
    kind: PortalLinkKind
    created_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    revoked_at: _timestamp_pb2.Timestamp
    used_at: _timestamp_pb2.Timestamp
    url: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., owner_id: _Optional[str] = ..., endpoint_ids: _Optional[_Iterable[str]] = ..., all_owners: _Optional[bool] = ..., can_manage_endpoints: _Optional[bool] = ..., kind: _Optional[_Union[PortalLinkKind, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., used_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., url: _Optional[str] = ...) -> None: ...

class CreatePortalLinkRequest(_message.Message):
    __slots__ = ("name", "owner_id", "endpoint_ids", "all_owners", "can_manage_endpoints", "kind", "lifetime")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_IDS_FIELD_NUMBER: _ClassVar[int]
    ALL_OWNERS_FIELD_NUMBER: _ClassVar[int]
    CAN_MANAGE_ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LIFETIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    owner_id: str
    endpoint_ids: _containers.RepeatedScalarFieldContainer[str]
    all_owners: bool
    can_manage_endpoints: bool
    kind: PortalLinkKind
    lifetime: _duration_pb2.Duration
    def __init__(self, name: _Optional[str] = ..., owner_id: _Optional[str] = ..., endpoint_ids: _Optional[_Iterable[str]] = ..., all_owners: _Optional[bool] = ..., can_manage_endpoints: _Optional[bool] = ..., kind: _Optional[_Union[PortalLinkKind, str]] = ..., lifetime: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class GetPortalLinkRequest(_message.Message):
    __slots__ = ("portal_link_id",)
    PORTAL_LINK_ID_FIELD_NUMBER: _ClassVar[int]
    portal_link_id: str
    def __init__(self, portal_link_id: _Optional[str] = ...) -> None: ...

class ListPortalLinksRequest(_message.Message):
    __slots__ = ("owner_id", "show_inactive", "page_size", "page_token")
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    SHOW_INACTIVE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    owner_id: str
    show_inactive: bool
    page_size: int
    page_token: str
    def __init__(self, owner_id: _Optional[str] = ..., show_inactive: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPortalLinksResponse(_message.Message):
    __slots__ = ("portal_links", "next_page_token")
    PORTAL_LINKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    portal_links: _containers.RepeatedCompositeFieldContainer[PortalLink]
    next_page_token: str
    def __init__(self, portal_links: _Optional[_Iterable[_Union[PortalLink, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RevokePortalLinkRequest(_message.Message):
    __slots__ = ("portal_link_id",)
    PORTAL_LINK_ID_FIELD_NUMBER: _ClassVar[int]
    portal_link_id: str
    def __init__(self, portal_link_id: _Optional[str] = ...) -> None: ...
