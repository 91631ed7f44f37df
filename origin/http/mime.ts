/** Moved to shared/ (the edge builds the same headers for origin-free reads); re-exported for origin's importers. */
export * from '../../shared/mime.ts';
