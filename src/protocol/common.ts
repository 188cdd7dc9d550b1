/** Shapes shared by every resource of the public API: errors, pages, names. */
import { Type, type TSchema } from '@sinclair/typebox';
import { PROJECT_NAME_PATTERN } from '../core/names.js';

export const ErrorBody = Type.Object({
  error: Type.Object({
    code: Type.String({ description: 'Stable snake_case code; branch on this, never on the message.' }),
    message: Type.String(),
    details: Type.Record(Type.String(), Type.Unknown()),
  }),
}, { $id: 'ErrorBody' });

export const ProjectName = Type.String({ pattern: PROJECT_NAME_PATTERN, description: 'Project name, unique per account.' });

export const NameParams = Type.Object({ name: Type.String() });

export const PageQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
  cursor: Type.Optional(Type.String()),
});

export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

export const StringMap = Type.Record(Type.String(), Type.String());

/** Error responses every authenticated route may give, for the OpenAPI document. */
export const authErrors = { 401: ErrorBody, 403: ErrorBody, 404: ErrorBody };
