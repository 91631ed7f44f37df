/** Moved to shared/ (the edge answers conditionals for origin-free reads); re-exported for origin's importers. */
export * from '../../shared/conditional.ts';
